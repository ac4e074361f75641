package flowtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// The numbers for the debounce burst.
const (
	BurstEnqueues = 1000
	BurstSpan     = 2 * time.Second
	BurstWindow   = 500 * time.Millisecond
	BurstMaxWait  = 3 * time.Second
)

// DebounceBurst enqueues one key BurstEnqueues times, paced over
// BurstSpan, with a BurstWindow window and a BurstMaxWait max wait, a
// worker running all along. The job runs exactly once, with the last
// arguments, about a window after the burst: no gap reaches the window
// and the burst ends before the max wait. On a machine so loaded that
// the burst outlasts the max wait (or pauses for a window), the job runs
// once per such cut, which the test allows and logs; the last run always
// has the last arguments.
func DebounceBurst(t *testing.T, b Backend) {
	t.Helper()
	q := fmt.Sprintf("debounce-%d", time.Now().UnixNano())
	task := queue.NewTask[args, queue.None]("flow.debounced", queue.TaskOptions{Queue: q})
	var mu sync.Mutex
	var runs []int
	last := make(chan struct{})
	w := worker.New(b, worker.Config{Concurrency: 4, PollInterval: 20 * time.Millisecond, Queues: []worker.QueueConfig{{Name: q}}})
	worker.Register(w, task, func(_ context.Context, a args) (queue.None, error) {
		mu.Lock()
		defer mu.Unlock()
		runs = append(runs, a.N)
		if a.N == BurstEnqueues-1 {
			close(last)
		}
		return queue.None{}, nil
	})
	ctx := context.Background()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(ctx) })

	c := queue.NewClient(b, queue.Config{})
	opts := &queue.EnqueueOptions{Debounce: &queue.Debounce{Key: "doc", Window: BurstWindow, MaxWait: BurstMaxWait}}
	start := time.Now()
	prev, gap, cuts := start, time.Duration(0), 0
	jobs := map[string]bool{}
	for i := range BurstEnqueues {
		time.Sleep(time.Until(start.Add(BurstSpan * time.Duration(i) / BurstEnqueues))) // pacing, not waiting for an outcome
		h, err := task.Enqueue(ctx, c, args{N: i}, opts)
		if err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
		jobs[h.ID] = true
		now := time.Now()
		if d := now.Sub(prev); d >= BurstWindow {
			cuts++
		}
		gap, prev = max(gap, now.Sub(prev)), now
	}
	span := time.Since(start)
	select {
	case <-last:
	case <-time.After(BurstMaxWait + 15*time.Second):
		t.Fatalf("the job with the last arguments did not run within %s of the burst", BurstMaxWait+15*time.Second)
	}
	// Every job of the queue finished: no other run can come.
	waitQueueFinished(t, b, q, len(jobs))
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d enqueues in %s (longest gap %s): %d jobs, runs with args %v", BurstEnqueues, span.Round(time.Millisecond), gap.Round(time.Millisecond), len(jobs), runs)
	if runs[len(runs)-1] != BurstEnqueues-1 {
		t.Fatalf("the last run had args %d, want %d", runs[len(runs)-1], BurstEnqueues-1)
	}
	if len(runs) != len(jobs) {
		t.Fatalf("%d runs of %d jobs", len(runs), len(jobs))
	}
	most := 1 + cuts + int(span/BurstMaxWait)
	if span < BurstMaxWait && cuts == 0 {
		most = 1
	}
	if len(runs) > most {
		t.Fatalf("%d runs; want at most %d (burst of %s, %d gaps of a window)", len(runs), most, span, cuts)
	}
}

// waitQueueFinished waits until queue q holds n finished jobs and none
// unfinished. Polled: jobs finish in the worker, and a backend's
// notifications are hints.
func waitQueueFinished(t *testing.T, b Backend, q string, n int) map[job.State]int {
	t.Helper()
	const limit = 2 * time.Minute // a loaded machine's; a quiet one takes seconds
	deadline := time.Now().Add(limit)
	for {
		s, err := b.QueueStats(context.Background(), backends.QueueStatsParams{Queue: q})
		if err != nil {
			t.Fatal(err)
		}
		counts := map[job.State]int{}
		if len(s) > 0 {
			counts = s[0].Counts
		}
		fin := counts[job.Done] + counts[job.Dead] + counts[job.Cancelled]
		if fin == n && fin == total(counts) {
			return counts
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s after %s: %v; want %d finished", q, limit, counts, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func total(counts map[job.State]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// The numbers for expiry behind a paused queue.
const (
	ExpiringJobs = 1000
	ExpiringIn   = time.Second
)

// ExpiryBehindPause enqueues ExpiringJobs jobs that expire in (zero:
// ExpiringIn) on a paused queue with a worker waiting on it, lets them
// expire, then resumes the queue: every job ends dead with the reason
// "expired: not started by <time>", and none runs. AMQP with a store,
// slow to enqueue them under the race detector, is given a longer in, so
// that most of them wait before their expiry as on the other backends.
func ExpiryBehindPause(t *testing.T, b Backend, in time.Duration) {
	t.Helper()
	p, ok := b.(backends.Pauser)
	if !ok {
		t.Fatalf("backend %T cannot pause a queue", b)
	}
	ctx := context.Background()
	q := fmt.Sprintf("expiring-%d", time.Now().UnixNano())
	if err := p.PauseQueue(ctx, backends.PauseQueueParams{Queue: q}); err != nil {
		t.Fatal(err)
	}
	task := queue.NewTask[args, queue.None]("flow.expiring", queue.TaskOptions{Queue: q})
	var ran atomic.Int64
	w := worker.New(b, worker.Config{Concurrency: 50, PollInterval: 20 * time.Millisecond, Queues: []worker.QueueConfig{{Name: q}},
		Logger: slog.New(slog.DiscardHandler)}) // a warning per expired job
	worker.Register(w, task, func(context.Context, args) (queue.None, error) { ran.Add(1); return queue.None{}, nil })
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(ctx) })
	c := queue.NewClient(b, queue.Config{})
	expires := time.Now().Add(cmp.Or(in, ExpiringIn))
	for done := 0; done < ExpiringJobs; done += 500 {
		reqs := make([]queue.Request, 500)
		for i := range reqs {
			reqs[i] = task.Request(args{N: done + i}, &queue.EnqueueOptions{ExpiresAt: expires})
		}
		if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
			t.Fatal(err)
		}
	}
	// Enqueueing may outlast the expiry on a loaded machine: the jobs wait
	// behind the pause all the same.
	enqueued := time.Since(expires.Add(-cmp.Or(in, ExpiringIn)))
	time.Sleep(time.Until(expires) + 10*time.Millisecond) // the condition is the passing of the expiry itself
	resumed := time.Now()
	if err := p.ResumeQueue(ctx, backends.PauseQueueParams{Queue: q}); err != nil {
		t.Fatal(err)
	}
	counts := waitQueueFinished(t, b, q, ExpiringJobs)
	t.Logf("%d jobs enqueued in %s expired behind the pause, all finished %s after resume: %v",
		ExpiringJobs, enqueued.Round(time.Millisecond), time.Since(resumed).Round(time.Millisecond), counts)
	if n := ran.Load(); n != 0 {
		t.Fatalf("%d expired jobs ran", n)
	}
	if counts[job.Dead] != ExpiringJobs {
		t.Fatalf("counts %v, want %d dead", counts, ExpiringJobs)
	}
	seen := 0
	for cursor := ""; ; {
		page, err := b.ListJobs(ctx, backends.ListJobsParams{Queue: q, State: job.Dead, Limit: 500, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Jobs {
			seen++
			if n := len(r.Errors); n == 0 || !strings.HasPrefix(r.Errors[n-1].Error, flow.ErrExpired.Error()+": not started by ") {
				t.Fatalf("job %s is dead with %v, want the expiry reason", r.ID, r.Errors)
			}
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if seen != ExpiringJobs {
		t.Fatalf("listed %d dead jobs, want %d", seen, ExpiringJobs)
	}
}

// DebounceUnsupported checks the documented fallback of a backend that is
// not a backends.Debouncer: the debounced enqueue fails with
// ErrUnsupported and stores nothing.
func DebounceUnsupported(t *testing.T, b backends.Backend) {
	t.Helper()
	if _, ok := b.(backends.Debouncer); ok {
		t.Fatalf("backend %T is a Debouncer", b)
	}
	task := queue.NewTask[args, queue.None]("flow.debounced", queue.TaskOptions{Queue: "debounce-unsupported"})
	_, err := task.Enqueue(context.Background(), queue.NewClient(b, queue.Config{}), args{}, &queue.EnqueueOptions{
		Debounce: &queue.Debounce{Key: "k", Window: time.Second},
	})
	if !errors.Is(err, queue.ErrUnsupported) {
		t.Fatalf("debounced enqueue on %T: %v, want ErrUnsupported", b, err)
	}
}
