package chaos_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
)

// TestClusterRabbitMQ runs on the 3-node RabbitMQ cluster: the AMQP
// backend's suite (with a job-state store) on quorum queues replicated on
// all three nodes; then the chaos workload while one node, then another,
// is stopped and started again. Producers and workers use a URL naming
// all three nodes and reconnect to a live one; every confirmed publish is
// consumed.
func TestClusterRabbitMQ(t *testing.T) {
	t.Parallel()
	url := clusterEnv(t, "CONVEYOR_RABBITMQ_CLUSTER_URL")
	rc := &rabbitCluster{t: t, nodes: strings.Split(clusterEnv(t, "CONVEYOR_RABBITMQ_CLUSTER_NODES"), ","),
		epmd: clusterEnv(t, "CONVEYOR_RABBITMQ_CLUSTER_EPMD_PORT")}
	t.Run("conformance", func(t *testing.T) {
		prefix := uniquePrefix()
		t.Cleanup(func() { rc.deleteQueues(t, url, prefix) })
		backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
			st, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "state.db")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			b, err := amqpbackend.OpenStored(context.Background(), amqpbackend.Config{URL: url, Prefix: prefix, Store: st, Clock: clock,
				TransitWait: 5 * time.Second}) // as the backend's own suite: a loaded machine delays arrivals
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, WallClock: true}.Run(t)
	})
	t.Run("node stopped and restarted", func(t *testing.T) {
		store := startRedis(t)
		sp := spec{Kind: "amqp", URL: url, Prefix: uniquePrefix(), Store: "redis://" + store.Addr + "/0"}
		t.Cleanup(func() { rc.deleteQueues(t, url, sp.Prefix) })
		crash := *rc
		crash.t, crash.queue = t, sp.Prefix+".q."+mainQueue
		runChaos(t, chaosCase{spec: sp, server: &crash, corrupt: amqpStoreCorruptors(sp)})
		if t.Failed() { // what the broker still holds, before the cleanup deletes it
			out, err := rc.ctl(rc.nodes[0], "list_queues", "--no-table-headers", "name", "type", "leader", "messages_ready", "messages_unacknowledged")
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, sp.Prefix+".") {
					t.Log("left in the broker:", line)
				}
			}
			if err != nil {
				t.Log(err)
			}
		}
		if crash.moved == 0 {
			t.Error("no process was connected to a stopped node: the reconnection to a live node went untested")
		}
		members, err := crash.queueInfo(rc.nodes[0], "members")
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(strings.Join(members, " "), "@"); n != len(rc.nodes) {
			t.Errorf("queue %s has members %v, want one on each of %d nodes", crash.queue, members, len(rc.nodes))
		}
	})
}

// deleteQueues deletes the queues and exchanges named with prefix on the
// cluster: listed by rabbitmqctl, deleted over AMQP on the first node
// (the entities are the cluster's), which is up again when a run ends.
func (r *rabbitCluster) deleteQueues(t testing.TB, url, prefix string) {
	conn, err := amqp.Dial(firstNode(url))
	if err != nil {
		t.Logf("deleting this run's queues: %v", err)
		return
	}
	defer conn.Close()
	for _, kind := range []string{"queue", "exchange"} {
		out, err := r.ctl(r.nodes[0], "list_"+kind+"s", "--no-table-headers", "name")
		if err != nil {
			t.Logf("deleting this run's %ss: %v", kind, err)
			continue
		}
		for _, name := range strings.Fields(out) {
			if !strings.HasPrefix(name, prefix+".") {
				continue
			}
			ch, err := conn.Channel()
			if err == nil {
				if kind == "queue" {
					_, err = ch.QueueDelete(name, false, false, false)
				} else {
					err = ch.ExchangeDelete(name, false, false)
				}
				_ = ch.Close()
			}
			if err != nil {
				t.Logf("deleting %s: %v", name, err)
			}
		}
	}
}

// firstNode is a URL of several nodes cut to its first: amqp091 itself
// dials one address.
func firstNode(url string) string {
	scheme, rest, _ := strings.Cut(url, "://")
	at := strings.LastIndexByte(rest, '@') + 1
	hosts, tail, _ := strings.Cut(rest[at:], "/")
	first, _, _ := strings.Cut(hosts, ",")
	return scheme + "://" + rest[:at] + first + "/" + tail
}
