package redisbackend_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/flow/flowtest"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

type flowArgs struct{ N int }

// Two worker processes' worth (two clients, two backends, one prefix)
// share a rate limit of 5 an hour and a concurrency limit of 2 per key
// held in Redis by the native Limiter: of 20 rate-limited jobs exactly 5
// run and the rest wait without an attempt or a delivery used; of 30 keyed
// jobs none runs beside 2 others of its key. Counted, not timed.
func TestLimitsHoldAcrossWorkers(t *testing.T) {
	prefix := "test-flow-" + fmt.Sprint(time.Now().UnixNano())
	bs := []*redisbackend.Backend{
		open(t, newClient(t), redisbackend.Config{Prefix: prefix}),
		open(t, newClient(t), redisbackend.Config{Prefix: prefix}),
	}
	rated := queue.NewTask[flowArgs, queue.None]("flow.rated", queue.TaskOptions{
		Queue: "rated", RateLimit: &flow.RateLimit{Limit: 5, Per: time.Hour},
	})
	keyed := queue.NewTask[flowArgs, queue.None]("flow.keyed", queue.TaskOptions{
		Queue: "keyed", ConcurrencyLimit: &flow.ConcurrencyLimit{Limit: 2, Backoff: 5 * time.Millisecond},
	})
	var ran atomic.Int64
	var ledger flowtest.Ledger
	for i, b := range bs {
		w := worker.New(b, worker.Config{ID: fmt.Sprintf("w%d", i), Concurrency: 8, PollInterval: 20 * time.Millisecond,
			Queues: []worker.QueueConfig{{Name: "rated"}, {Name: "keyed"}}})
		worker.Register(w, rated, func(context.Context, flowArgs) (queue.None, error) { ran.Add(1); return queue.None{}, nil })
		worker.Register(w, keyed, func(ctx context.Context, _ flowArgs) (queue.None, error) {
			j, _ := worker.JobFromContext(ctx)
			key := flow.ByJobKey(j)
			defer ledger.Enter(key)()
			time.Sleep(20 * time.Millisecond) // the job's work, for others to try to overlap
			return queue.None{}, nil
		})
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Stop(context.Background()) })
	}
	c := queue.NewClient(bs[0], queue.Config{})
	var reqs []queue.Request
	for i := range 20 {
		reqs = append(reqs, rated.Request(flowArgs{N: i}, nil))
	}
	for i := range 30 {
		reqs = append(reqs, keyed.Request(flowArgs{N: i}, &queue.EnqueueOptions{Key: fmt.Sprintf("tenant-%d", i%3)}))
	}
	if _, err := c.EnqueueMany(context.Background(), reqs...); err != nil {
		t.Fatal(err)
	}
	count := func(q string, st job.State) int {
		s, err := bs[1].QueueStats(context.Background(), backends.QueueStatsParams{Queue: q})
		if err != nil {
			t.Fatal(err)
		}
		if len(s) == 0 {
			return 0
		}
		return s[0].Counts[st]
	}
	testenv.WaitFor(t, 30*time.Second, "5 rated jobs done, 15 held back, 30 keyed done", func() bool {
		return count("rated", job.Done) == 5 && count("rated", job.Scheduled) == 15 && count("keyed", job.Done) == 30
	})
	if n := ran.Load(); n != 5 {
		t.Fatalf("the rated handler ran %d times under a limit of 5", n)
	}
	flowtest.HeldBackUnspent(t, bs[0], "rated")
	ledger.AtMost(t, 2)
	t.Logf("most running at once per key: %v", ledger.Most())
}

// BenchmarkLimitsOverhead: a burn-down with a rate limit and with a
// concurrency limit, both far above the throughput, against none.
func BenchmarkLimitsOverhead(b *testing.B) {
	client := newClient(b)
	flowtest.BenchOverhead(b, func(b *testing.B) backends.Backend { return open(b, client, redisbackend.Config{}) })
}
