package flowtest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// LimitsChangeAtRunTime changes limits while jobs run, on workers over bs
// (two processes' worth: handles of their own on one server; the rate
// part uses the first), and counts what follows, never timing it:
//
//   - a concurrency limit of 2 shared by the workers is raised to 4 by an
//     override, then lowered back by removing it: at most 2 run at once,
//     then exactly 4, then at most 2 again, counted as each job starts;
//     the workers' announcements (worker.Limits) show the limit in force,
//     its slots in use and the jobs it holds back;
//   - a rate override lowers a queue's declared limit (100 an hour to 1:
//     one more job runs) and adds one to a queue that declares none (2 an
//     hour: two run), the rest held back.
func LimitsChangeAtRunTime(t *testing.T, bs ...Backend) {
	t.Helper()
	t.Run("concurrency", func(t *testing.T) { concurrencyChangedMidRun(t, bs) })
	t.Run("rate", func(t *testing.T) { rateOverridesMidRun(t, bs[0]) })
}

func start(t *testing.T, w *worker.Worker) {
	t.Helper()
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
}

// counts returns queue q's jobs by state.
func counts(t *testing.T, b Backend, q string) map[job.State]int {
	t.Helper()
	st, err := b.QueueStats(context.Background(), backends.QueueStatsParams{Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	if len(st) == 0 {
		return map[job.State]int{}
	}
	return st[0].Counts
}

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
func concurrencyChangedMidRun(t *testing.T, bs []Backend) {
	task := queue.NewTask[args, queue.None]("flow.live", queue.TaskOptions{
		Queue: "live", ConcurrencyLimit: &flow.ConcurrencyLimit{Limit: 2, Backoff: 500 * time.Millisecond},
	})
	var run running
	proceed := make(chan struct{}, 100)
	var ws []*worker.Worker
	for i, b := range bs {
		w := worker.New(b, worker.Config{ID: fmt.Sprintf("w%d", i), Queues: []worker.QueueConfig{{Name: "live"}},
			Concurrency: 8, PollInterval: 20 * time.Millisecond, LeaseDuration: 6 * time.Second}) // heartbeats (announcements) every 2s; long enough that a loaded machine loses no lease
		worker.Register(w, task, func(ctx context.Context, _ args) (queue.None, error) {
			defer run.enter()()
			select {
			case <-proceed:
			case <-ctx.Done():
			}
			return queue.None{}, nil
		})
		start(t, w)
		ws = append(ws, w)
	}
	c := queue.NewClient(bs[0], queue.Config{})
	reqs := make([]queue.Request, 12)
	for i := range reqs {
		reqs[i] = task.Request(args{N: i}, nil) // no key: one slot set for all
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
	for deadline := time.Now().Add(30 * time.Second); counts(t, bs[0], "live")[job.Done] != 12; {
		if time.Now().After(deadline) {
			now, most := run.get()
			t.Fatalf("after 30s: jobs %v, want 12 done; %d running, most at once by phase %v", counts(t, bs[0], "live"), now, most)
		}
		time.Sleep(20 * time.Millisecond) // jobs finish in other goroutines; the server announces nothing to wait on
	}
	_, most := run.get()
	if most[1] != 4 || most[2] > 2 {
		t.Fatalf("most running at once: %d with the override (want 4), %d after its removal (want at most 2)", most[1], most[2])
	}
	t.Logf("most running at once by phase (2, raised to 4, back to 2): %v", most)
}

// A rate override lowers a queue's declared limit mid-run and adds one to
// a queue that declares none: counted, the new figures hold at once.
func rateOverridesMidRun(t *testing.T, b Backend) {
	lowered := queue.NewTask[args, queue.None]("flow.lowered", queue.TaskOptions{Queue: "lowered"})
	added := queue.NewTask[args, queue.None]("flow.added", queue.TaskOptions{Queue: "added"})
	w := worker.New(b, worker.Config{PollInterval: 20 * time.Millisecond, Queues: []worker.QueueConfig{
		{Name: "lowered", RateLimit: &flow.RateLimit{Limit: 100, Per: time.Hour}}, {Name: "added"}}})
	var ran atomic.Int64
	run := func(context.Context, args) (queue.None, error) { ran.Add(1); return queue.None{}, nil }
	worker.Register(w, lowered, run)
	worker.Register(w, added, run)
	start(t, w)
	ctx := context.Background()
	c := queue.NewClient(b, queue.Config{})
	enqueue := func(task *queue.Task[args, queue.None], n int) {
		t.Helper()
		reqs := make([]queue.Request, n)
		for i := range reqs {
			reqs[i] = task.Request(args{N: i}, nil)
		}
		if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(lowered, 5)
	enqueue(added, 3)
	testenv.WaitFor(t, 15*time.Second, "the first 8 done", func() bool {
		return counts(t, b, "lowered")[job.Done] == 5 && counts(t, b, "added")[job.Done] == 3
	})
	for _, o := range []flow.Override{
		{Kind: flow.KindRate, Name: "queue:lowered", Limit: 1},               // burst 1: one token left of 95
		{Kind: flow.KindRate, Name: "queue:added", Limit: 2, Per: time.Hour}, // a new bucket of 2
	} {
		if err := flow.SetOverride(ctx, b, o); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 15*time.Second, "the worker applying both overrides", func() bool {
		s := w.LimitStates()
		r, ok1 := limitOf(s, flow.KindRate, "queue:lowered")
		o, ok2 := limitOf(s, flow.KindRate, "queue:added")
		return ok1 && ok2 && r.Limit == 1 && r.Overridden && o.Limit == 2
	})
	enqueue(lowered, 5)
	enqueue(added, 5)
	testenv.WaitFor(t, 15*time.Second, "1 more of lowered and 2 of added done, the rest held back", func() bool {
		r, o := counts(t, b, "lowered"), counts(t, b, "added")
		return r[job.Done] == 6 && r[job.Scheduled] == 4 && o[job.Done] == 5 && o[job.Scheduled] == 3
	})
	if n := ran.Load(); n != 11 {
		t.Fatalf("handlers ran %d times; want 8 before the overrides and 3 after", n)
	}
	s, _ := limitOf(w.LimitStates(), flow.KindRate, "queue:added")
	if s.InUse != 2 || s.HeldBack != 3 || s.HeldBackTotal != 3 {
		t.Fatalf("the added limit's state: %+v; want 2 taken, 3 waiting", s)
	}
}
