package flowtest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// Backend is a backend that can be inspected, as these checks need.
type Backend interface {
	backends.Backend
	backends.Inspector
}

type args struct{ N int }

// LimitsHoldAcrossWorkers runs one worker on each of bs (two processes'
// worth: handles of their own on one server) sharing a rate limit of 5 an
// hour and a concurrency limit of 2 per key: of 20 rate-limited jobs
// exactly 5 run and the rest wait without an attempt or a delivery used;
// of 30 keyed jobs none runs beside 2 others of its key. Counted, not
// timed: within the test the bucket refills by a sliver of a token.
func LimitsHoldAcrossWorkers(t *testing.T, bs ...Backend) {
	t.Helper()
	rated := queue.NewTask[args, queue.None]("flow.rated", queue.TaskOptions{
		Queue: "rated", RateLimit: &flow.RateLimit{Limit: 5, Per: time.Hour},
	})
	keyed := queue.NewTask[args, queue.None]("flow.keyed", queue.TaskOptions{
		Queue: "keyed", ConcurrencyLimit: &flow.ConcurrencyLimit{Limit: 2, Backoff: 5 * time.Millisecond},
	})
	var ran atomic.Int64
	var ledger Ledger
	for i, b := range bs {
		w := worker.New(b, worker.Config{ID: fmt.Sprintf("w%d", i), Concurrency: 8, PollInterval: 20 * time.Millisecond,
			Queues: []worker.QueueConfig{{Name: "rated"}, {Name: "keyed"}}})
		worker.Register(w, rated, func(context.Context, args) (queue.None, error) { ran.Add(1); return queue.None{}, nil })
		worker.Register(w, keyed, func(ctx context.Context, _ args) (queue.None, error) {
			j, _ := worker.JobFromContext(ctx)
			defer ledger.Enter(flow.ByJobKey(j))()
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
		reqs = append(reqs, rated.Request(args{N: i}, nil))
	}
	for i := range 30 {
		reqs = append(reqs, keyed.Request(args{N: i}, &queue.EnqueueOptions{Key: fmt.Sprintf("tenant-%d", i%3)}))
	}
	if _, err := c.EnqueueMany(context.Background(), reqs...); err != nil {
		t.Fatal(err)
	}
	count := func(q string, st job.State) int {
		s, err := bs[len(bs)-1].QueueStats(context.Background(), backends.QueueStatsParams{Queue: q})
		if err != nil {
			t.Fatal(err)
		}
		if len(s) == 0 {
			return 0
		}
		return s[0].Counts[st]
	}
	deadline := time.Now().Add(30 * time.Second)
	for count("rated", job.Done) != 5 || count("rated", job.Scheduled) != 15 || count("keyed", job.Done) != 30 {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: rated %d done, %d held back; keyed %d done; want 5, 15, 30",
				count("rated", job.Done), count("rated", job.Scheduled), count("keyed", job.Done))
		}
		time.Sleep(20 * time.Millisecond) // jobs finish in other goroutines; the server announces nothing to wait on
	}
	if n := ran.Load(); n != 5 {
		t.Fatalf("the rated handler ran %d times under a limit of 5", n)
	}
	HeldBackUnspent(t, bs[0], "rated")
	ledger.AtMost(t, 2)
	t.Logf("most running at once per key: %v", ledger.Most())
}
