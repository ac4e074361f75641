package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// RabbitMQ is a private RabbitMQ node on loopback, for tests that restart
// the broker under running workers without disturbing the shared one.
type RabbitMQ struct {
	URL  string
	Node string
	t    testing.TB
}

// StartRabbitMQ starts a private node on free ports (a few seconds: it is
// an Erlang VM) and stops it when the test ends.
func StartRabbitMQ(t testing.TB) *RabbitMQ {
	t.Helper()
	RabbitMQURL(t) // the same precondition as the shared node
	port, dist := FreePort(t), FreePort(t)
	// The broker runs as the rabbitmq user, which cannot enter t.TempDir().
	dir, err := os.MkdirTemp("", "conveyor-rabbitmq-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	conf := filepath.Join(dir, "rabbitmq.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\n", port)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("chown", "-R", "rabbitmq:rabbitmq", dir).Run(); err != nil {
		t.Fatalf("chown %s to rabbitmq: %v", dir, err)
	}
	r := &RabbitMQ{URL: fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port), Node: fmt.Sprintf("conveyor-%d@localhost", port), t: t}
	cmd := exec.Command("rabbitmq-server", "-detached")
	cmd.Env = append(os.Environ(),
		"RABBITMQ_NODENAME="+r.Node, "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1", "RABBITMQ_NODE_PORT="+strconv.Itoa(port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(dist), "RABBITMQ_CONFIG_FILE="+conf,
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"), "RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rabbitmq-server: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("rabbitmqctl", "-q", "-n", r.Node, "stop").Run() })
	r.ctl("await_startup", "--timeout", "60") // waits for the node to register, then for the broker
	return r
}

func (r *RabbitMQ) ctl(args ...string) {
	r.t.Helper()
	var out []byte
	var err error
	// await_startup fails until the node has registered with epmd.
	for range 60 {
		out, err = exec.Command("rabbitmqctl", append([]string{"-q", "-n", r.Node}, args...)...).CombinedOutput()
		if err == nil {
			return
		}
		if args[0] != "await_startup" {
			break
		}
	}
	r.t.Fatalf("rabbitmqctl -n %s %v: %v: %s", r.Node, args, err, out)
}

// Stop stops the RabbitMQ application (the Erlang VM stays up): every
// connection drops; durable queues and their messages survive.
func (r *RabbitMQ) Stop() { r.ctl("stop_app") }

// Start starts the application again and waits until it serves.
func (r *RabbitMQ) Start() {
	r.ctl("start_app")
	r.ctl("await_startup")
}

// DeleteRabbitMQQueues deletes, when t ends, the queues on the test broker
// whose names start with prefix+".", so a run leaves none behind. The
// broker lists queues only through rabbitmqctl (or the management plugin).
func DeleteRabbitMQQueues(t testing.TB, prefix string) {
	node := RabbitMQNode(t)
	t.Cleanup(func() {
		out, err := exec.Command("rabbitmqctl", "-q", "-n", node, "list_queues", "name", "--no-table-headers").Output()
		if err != nil {
			t.Errorf("rabbitmqctl list_queues: %v", err)
			return
		}
		for _, name := range strings.Fields(string(out)) {
			if strings.HasPrefix(name, prefix+".") {
				if out, err := exec.Command("rabbitmqctl", "-q", "-n", node, "delete_queue", name).CombinedOutput(); err != nil {
					t.Errorf("rabbitmqctl delete_queue %s: %v: %s", name, err, out)
				}
			}
		}
	})
}
