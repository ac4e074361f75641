package redisbackend_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
)

// open returns a backend on client under a prefix of its own, so tests
// sharing one server never see each other's keys.
func open(t testing.TB, client redis.UniversalClient, cfg redisbackend.Config) *redisbackend.Backend {
	t.Helper()
	cfg.Client = client
	if cfg.Prefix == "" {
		cfg.Prefix = "test-" + t.Name()
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
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return open(t, client, redisbackend.Config{Prefix: "conformance"})
	})
}

func TestConformanceCluster(t *testing.T) {
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: testenv.RedisCluster(t)})
	t.Cleanup(func() { _ = client.Close() })
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return open(t, client, redisbackend.Config{Prefix: "conformance"})
	})
}

// Finished jobs are pruned after their retention, except while their
// unique window is open; the counts follow.
func TestTidyPrunesFinishedJobs(t *testing.T) {
	ctx := context.Background()
	b := open(t, newClient(t), redisbackend.Config{KeepDone: time.Millisecond, JanitorEvery: -1})
	plain := &backends.JobInsert{ID: "plain", Queue: "q", Task: "t"}
	windowed := &backends.JobInsert{ID: "windowed", Queue: "q", Task: "t", UniqueKey: "k", UniqueUntil: time.Now().Add(time.Hour)}
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{plain, windowed}}); err != nil {
		t.Fatal(err)
	}
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 2, Lease: time.Minute})
	if err != nil || len(recs) != 2 {
		t.Fatalf("Reserve = %d, %v", len(recs), err)
	}
	for _, r := range recs {
		if err := b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Millisecond) // past the 1ms retention; nothing announces it
	if err := b.Tidy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetJob(ctx, backends.GetJobParams{ID: "plain"}); !errors.Is(err, job.ErrNotFound) {
		t.Fatalf("pruned job: %v", err)
	}
	if _, err := b.GetJob(ctx, backends.GetJobParams{ID: "windowed"}); err != nil {
		t.Fatalf("job inside its unique window was pruned: %v", err)
	}
	st, err := b.QueueStats(ctx, backends.QueueStatsParams{Queue: "q"})
	if err != nil || st[0].Counts[job.Done] != 1 {
		t.Fatalf("stats after pruning: %+v, %v", st, err)
	}
}
