package worker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// running counts the handlers running at once and, per phase, the most
// seen as each started.
type running struct {
	mu         sync.Mutex
	now, phase int
	most       map[int]int
}

func (r *running) enter() (leave func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.most == nil {
		r.most = map[int]int{}
	}
	r.now++
	r.most[r.phase] = max(r.most[r.phase], r.now)
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.now--
	}
}

func (r *running) get() (now int, most map[int]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	most = map[int]int{}
	for p, n := range r.most {
		most[p] = n
	}
	return r.now, most
}

func (r *running) next() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phase++
}

// limitOf finds the state of the limit of kind and name.
func limitOf(states []flow.LimitState, kind, name string) (flow.LimitState, bool) {
	for _, s := range states {
		if s.Kind == kind && s.Name == name {
			return s, true
		}
	}
	return flow.LimitState{}, false
}

// A concurrency limit of 2 shared by two workers is raised to 4 by an
// override while its jobs run, then lowered back by removing it: the
// workers' announcements show each limit in force with the slots in use
// and the jobs held back, and the number running at once follows, counted
// at each start: at most 2, then exactly 4, then at most 2 again.
func TestConcurrencyLimitChangedMidRun(t *testing.T) {
	bs := openSQLite(t, filepath.Join(t.TempDir(), "live.db"), 2)
	task := queue.NewTask[Args, queue.None]("flow.live", queue.TaskOptions{
		Queue: "live", ConcurrencyLimit: &flow.ConcurrencyLimit{Limit: 2, Backoff: 500 * time.Millisecond},
	})
	var run running
	proceed := make(chan struct{}, 100)
	var ws []*worker.Worker
	for i, b := range bs {
		w := worker.New(b, worker.Config{ID: fmt.Sprintf("w%d", i), Queues: []worker.QueueConfig{{Name: "live"}},
			Concurrency: 8, PollInterval: 20 * time.Millisecond, LeaseDuration: 900 * time.Millisecond})
		worker.Register(w, task, func(ctx context.Context, _ Args) (queue.None, error) {
			defer run.enter()()
			select {
			case <-proceed:
			case <-ctx.Done():
			}
			return queue.None{}, nil
		})
		startWorker(t, w)
		ws = append(ws, w)
	}
	c := queue.NewClient(bs[0], queue.Config{})
	reqs := make([]queue.Request, 12)
	for i := range reqs {
		reqs[i] = task.Request(Args{N: i}, nil) // no key: one slot set for all
	}
	if _, err := c.EnqueueMany(context.Background(), reqs...); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cluster := func(what string, ok func(flow.LimitState) bool) flow.LimitState {
		t.Helper()
		var last flow.LimitState
		testenv.WaitFor(t, 20*time.Second, what, func() bool {
			states, err := worker.Limits(ctx, bs[0])
			if err != nil {
				t.Fatal(err)
			}
			last, _ = limitOf(states, flow.KindConcurrency, "flow.live")
			return ok(last)
		})
		return last
	}
	s := cluster("2 slots in use and jobs held back, announced by both workers", func(s flow.LimitState) bool {
		return s.InUse == 2 && s.HeldBack > 0 && s.Workers == 2
	})
	if s.Limit != 2 || s.Overridden || !s.PerKey {
		t.Fatalf("declared limit announced as %+v", s)
	}
	if now, most := run.get(); now != 2 || most[0] != 2 {
		t.Fatalf("under the declared limit: %d running, at most %d; want 2", now, most[0])
	}

	run.next() // phase 1: raised to 4
	if err := flow.SetOverride(ctx, bs[0], flow.Override{Kind: flow.KindConcurrency, Name: "flow.live", Limit: 4}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "4 running", func() bool { now, _ := run.get(); return now == 4 })
	s = cluster("the override's 4 slots in use", func(s flow.LimitState) bool { return s.InUse == 4 && s.Limit == 4 })
	if !s.Overridden || s.HeldBackTotal == 0 {
		t.Fatalf("overridden limit announced as %+v", s)
	}

	run.next() // phase 2: back to 2, while 4 slots are held (none can start)
	if err := flow.RemoveOverride(ctx, bs[0], flow.KindConcurrency, "flow.live"); err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		testenv.WaitFor(t, 20*time.Second, w.ID()+" applying the declared limit again", func() bool {
			s, ok := limitOf(w.LimitStates(), flow.KindConcurrency, "flow.live")
			return ok && s.Limit == 2 && !s.Overridden
		})
	}
	for range 12 {
		proceed <- struct{}{}
	}
	testenv.WaitFor(t, 30*time.Second, "all 12 done", func() bool { return counts(t, bs[0], "live")[job.Done] == 12 })
	_, most := run.get()
	if most[1] != 4 || most[2] > 2 {
		t.Fatalf("most running at once: %d with the override (want 4), %d after its removal (want at most 2)", most[1], most[2])
	}
	t.Logf("most running at once by phase (2, raised to 4, back to 2): %v", most)
}

// A rate override lowers a queue's declared limit mid-run and adds one to
// a queue that declares none: counted, the new figures hold at once.
func TestRateOverridesMidRun(t *testing.T) {
	bs := openSQLite(t, filepath.Join(t.TempDir(), "rate-live.db"), 1)
	rated := queue.NewTask[Args, queue.None]("flow.rated", queue.TaskOptions{Queue: "rated"})
	open := queue.NewTask[Args, queue.None]("flow.open", queue.TaskOptions{Queue: "open"})
	w := worker.New(bs[0], worker.Config{PollInterval: 20 * time.Millisecond, Queues: []worker.QueueConfig{
		{Name: "rated", RateLimit: &flow.RateLimit{Limit: 100, Per: time.Hour}}, {Name: "open"}}})
	var ran atomic.Int64
	run := func(context.Context, Args) (queue.None, error) { ran.Add(1); return queue.None{}, nil }
	worker.Register(w, rated, run)
	worker.Register(w, open, run)
	startWorker(t, w)
	ctx := context.Background()
	c := queue.NewClient(bs[0], queue.Config{})
	enqueue := func(task *queue.Task[Args, queue.None], n int) {
		t.Helper()
		reqs := make([]queue.Request, n)
		for i := range reqs {
			reqs[i] = task.Request(Args{N: i}, nil)
		}
		if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(rated, 5)
	enqueue(open, 3)
	testenv.WaitFor(t, 15*time.Second, "the first 8 done", func() bool {
		return counts(t, bs[0], "rated")[job.Done] == 5 && counts(t, bs[0], "open")[job.Done] == 3
	})
	for _, o := range []flow.Override{
		{Kind: flow.KindRate, Name: "queue:rated", Limit: 1},                // burst 1: one token left of 95
		{Kind: flow.KindRate, Name: "queue:open", Limit: 2, Per: time.Hour}, // a new bucket of 2
	} {
		if err := flow.SetOverride(ctx, bs[0], o); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 15*time.Second, "the worker applying both overrides", func() bool {
		s := w.LimitStates()
		r, ok1 := limitOf(s, flow.KindRate, "queue:rated")
		o, ok2 := limitOf(s, flow.KindRate, "queue:open")
		return ok1 && ok2 && r.Limit == 1 && r.Overridden && o.Limit == 2
	})
	enqueue(rated, 5)
	enqueue(open, 5)
	testenv.WaitFor(t, 15*time.Second, "1 more of rated and 2 of open done, the rest held back", func() bool {
		r, o := counts(t, bs[0], "rated"), counts(t, bs[0], "open")
		return r[job.Done] == 6 && r[job.Scheduled] == 4 && o[job.Done] == 5 && o[job.Scheduled] == 3
	})
	if n := ran.Load(); n != 11 {
		t.Fatalf("handlers ran %d times; want 8 before the overrides and 3 after", n)
	}
	s, _ := limitOf(w.LimitStates(), flow.KindRate, "queue:open")
	if s.InUse != 2 || s.HeldBack != 3 || s.HeldBackTotal != 3 {
		t.Fatalf("the added limit's state: %+v; want 2 taken, 3 waiting", s)
	}
}
