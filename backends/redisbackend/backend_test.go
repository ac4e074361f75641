package redisbackend_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/internal/faulttest"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/scheduler/schedulertest"
	"github.com/conveyorhq/conveyor/workflow/workflowtest"
)

// open returns a backend on client under a prefix of its own, so tests
// sharing one server never see each other's keys.
func open(t testing.TB, client redis.UniversalClient, cfg redisbackend.Config) *redisbackend.Backend {
	t.Helper()
	cfg.Client = client
	if cfg.Prefix == "" {
		cfg.Prefix = "test-" + t.Name() + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) // fresh keys on a reused server
	}
	b, err := redisbackend.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func newClient(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	client := newClient(t)
	backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
		return open(t, client, redisbackend.Config{Clock: clock}) // keys of its own: see the suite's doc
	}, FairGroups: ringGroups(client)}.Run(t)
}

func TestConformanceCluster(t *testing.T) {
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: testenv.RedisCluster(t)})
	t.Cleanup(func() { _ = client.Close() })
	backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
		return open(t, client, redisbackend.Config{Clock: clock}) // keys of its own: see the suite's doc
	}, FairGroups: ringGroups(client), SlotRulesUnsupported: true}.Run(t)
}

// ringGroups is the suite's Suite.FairGroups: the members of the ring.
func ringGroups(client redis.UniversalClient) func(*testing.T, backends.Backend, string) []string {
	return func(t *testing.T, b backends.Backend, q string) []string {
		groups, err := client.ZRange(context.Background(), redisbackend.RingKey(b.(*redisbackend.Backend), q), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		return groups
	}
}

// TestScheduler runs the scheduler's suite on the backend's KV store, each
// case under a prefix of its own.
func TestScheduler(t *testing.T) {
	client := newClient(t)
	schedulertest.Run(t, func(t *testing.T) backends.Backend { return open(t, client, redisbackend.Config{}) })
}

// Finished jobs are pruned after their retention, except while their
// unique window is open; the counts follow.
func TestTidyPrunesFinishedJobs(t *testing.T) {
	b := open(t, newClient(t), redisbackend.Config{KeepDone: time.Millisecond, JanitorEvery: -1})
	faulttest.PruneAfterRetention(t, b, b.Tidy)
}

// TestWorkflows runs the workflow engine's suite on the backend's KV
// store, each case under a prefix of its own.
func TestWorkflows(t *testing.T) {
	client := newClient(t)
	workflowtest.Run(t, func(t *testing.T) backends.Backend { return open(t, client, redisbackend.Config{}) })
}
