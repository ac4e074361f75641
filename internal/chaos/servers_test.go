package chaos_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/internal/testenv"
)

// crasher is a server the test may crash and bring back mid-run. Crash
// loses whatever the server had not made durable, as a power cut or an OOM
// kill would; Start returns once the server answers again.
type crasher interface {
	Crash()
	Start()
}

// waitAnswers polls up to a minute for answer to succeed: a server that
// starts or recovers from a crash says nothing a test could wait on.
func waitAnswers(t testing.TB, what string, answer func() error, log string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := answer()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tail, _ := os.ReadFile(log)
			t.Fatalf("%s does not answer: %v\n%s", what, err, tail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialable reports whether something accepts TCP connections on addr.
func dialable(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	return c.Close()
}

// redisServer is this test's own redis-server with every write fsynced to
// its append-only file before it is acknowledged, so a kill -9 loses
// nothing a client was told is stored. It never touches the shared Redis.
type redisServer struct {
	Addr string
	dir  string
	port int
	t    testing.TB
}

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	testenv.RedisAddr(t) // Redis is installed where the shared server runs
	r := &redisServer{dir: t.TempDir(), port: testenv.FreePort(t), t: t}
	r.Addr = "127.0.0.1:" + strconv.Itoa(r.port)
	r.Start()
	t.Cleanup(func() { r.kill() })
	return r
}

func (r *redisServer) log() string { return filepath.Join(r.dir, "redis.log") }

// Start starts the server on its port and directory, where it reloads its
// append-only file, and waits until it answers PING.
func (r *redisServer) Start() {
	r.t.Helper()
	out, err := exec.Command("redis-server", "--daemonize", "yes", "--bind", "127.0.0.1",
		"--port", strconv.Itoa(r.port), "--dir", r.dir, "--appendonly", "yes", "--appendfsync", "always",
		"--save", "", "--pidfile", filepath.Join(r.dir, "redis.pid"), "--logfile", r.log()).CombinedOutput()
	if err != nil {
		r.t.Fatalf("redis-server: %v: %s", err, out)
	}
	waitAnswers(r.t, "redis-server on "+r.Addr, func() error {
		out, err := exec.Command("redis-cli", "-p", strconv.Itoa(r.port), "ping").CombinedOutput()
		if err == nil && strings.TrimSpace(string(out)) != "PONG" {
			err = fmt.Errorf("PING: %s", out) // LOADING while it replays the file
		}
		return err
	}, r.log())
}

// Crash kills the server with SIGKILL and waits until its port is closed.
func (r *redisServer) Crash() {
	r.t.Helper()
	if !r.kill() {
		r.t.Fatalf("redis-server on %s: no process to kill", r.Addr)
	}
	waitAnswers(r.t, "the killed redis-server's port "+r.Addr+" to close", func() error {
		if dialable(r.Addr) == nil {
			return fmt.Errorf("still accepting connections")
		}
		return nil
	}, r.log())
}

// kill sends SIGKILL to the process named in the pid file.
func (r *redisServer) kill() bool {
	b, err := os.ReadFile(filepath.Join(r.dir, "redis.pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return false
	}
	return syscall.Kill(pid, syscall.SIGKILL) == nil
}

// pgBin is where the PostgreSQL programs are: version 15 as
// scripts/lib/servers.sh installs it, or CONVEYOR_PG_VERSION's.
func pgBin(name string) string {
	v := os.Getenv("CONVEYOR_PG_VERSION")
	if v == "" {
		v = "15"
	}
	return filepath.Join("/usr/lib/postgresql", v, "bin", name)
}

// asPostgres runs a PostgreSQL program as the postgres user when this test
// runs as root, which PostgreSQL refuses.
func asPostgres(args ...string) *exec.Cmd {
	if os.Geteuid() != 0 {
		return exec.Command(args[0], args[1:]...)
	}
	return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
}

// startPostgres starts this test's own PostgreSQL server, never the shared
// one, with room for its worker processes' pools. Its Crash aborts every
// backend without a checkpoint, so the next start replays the WAL.
func startPostgres(t testing.TB) *testenv.Postgres {
	return testenv.StartPostgres(t, "max_connections=200")
}

// rabbitNode restarts the RabbitMQ application of a node this run may
// restart: only the node scripts/chaos started for itself (see
// brokerRestarts). stop_app drops every connection; durable quorum queues
// and their messages survive.
type rabbitNode struct {
	node string
	t    testing.TB
}

// rabbitRestart keeps the two AMQP cases from restarting the one node at
// once: Crash takes it, Start gives it back.
var rabbitRestart sync.Mutex

func (r *rabbitNode) ctl(args ...string) {
	r.t.Helper()
	if out, err := exec.Command("rabbitmqctl", append([]string{"-q", "-n", r.node}, args...)...).CombinedOutput(); err != nil {
		r.t.Fatalf("rabbitmqctl -n %s %v: %v: %s", r.node, args, err, out)
	}
}

func (r *rabbitNode) Crash() {
	rabbitRestart.Lock()
	r.ctl("stop_app")
}

func (r *rabbitNode) Start() {
	defer rabbitRestart.Unlock()
	r.ctl("start_app")
	r.ctl("await_startup", "--timeout", "60")
}

// brokerRestarts reports whether this run may restart the RabbitMQ node
// named by CONVEYOR_RABBITMQ_NODE. scripts/chaos, which started that node
// for itself, says so with CONVEYOR_CHAOS_RESTART_BROKER=1; under
// scripts/test the node is shared by every package's tests, and starting a
// private node per run costs more than the CI-sized run may take, so there
// the AMQP cases kill workers but leave the broker up.
func brokerRestarts() bool { return os.Getenv("CONVEYOR_CHAOS_RESTART_BROKER") == "1" }

// brokerProbe asks the broker how many messages wait in a queue, over one
// connection it keeps (and opens again after a restart).
type brokerProbe struct {
	mu   sync.Mutex
	url  string
	conn *amqp.Connection
	ch   *amqp.Channel
}

func (p *brokerProbe) ready(name string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == nil || p.ch.IsClosed() {
		p.close()
		conn, err := amqp.Dial(p.url)
		if err != nil {
			return 0, err
		}
		ch, err := conn.Channel()
		if err != nil {
			_ = conn.Close()
			return 0, err
		}
		p.conn, p.ch = conn, ch
	}
	q, err := p.ch.QueueDeclarePassive(name, true, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	return q.Messages, nil
}

func (p *brokerProbe) close() {
	if p.conn != nil {
		_ = p.conn.Close()
	}
	p.conn, p.ch = nil, nil
}

// deleteAMQPEntities deletes the queues and exchanges a run made on the
// shared broker, found by the run's unique prefix.
func deleteAMQPEntities(t testing.TB, sp spec) {
	conn, err := amqp.Dial(sp.URL)
	if err != nil {
		t.Logf("deleting this run's queues: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Logf("deleting this run's queues: %v", err)
		return
	}
	for _, kind := range []string{"list_queues", "list_exchanges"} {
		out, err := exec.Command("rabbitmqctl", "-q", "-n", testenv.RabbitMQNode(t), kind, "name").Output()
		if err != nil {
			t.Logf("rabbitmqctl %s: %v", kind, err)
			continue
		}
		for _, name := range strings.Fields(string(out)) {
			if !strings.HasPrefix(name, sp.Prefix+".") {
				continue
			}
			if kind == "list_queues" {
				_, err = ch.QueueDelete(name, false, false, false)
			} else {
				err = ch.ExchangeDelete(name, false, false)
			}
			if err != nil {
				t.Logf("deleting %s: %v", name, err)
				return // the channel is closed now
			}
		}
	}
}
