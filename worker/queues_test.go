package worker_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/worker"
)

// reserveCounter counts Reserve calls by queue. It embeds only Backend, so
// the worker sees no Notifier: nothing but the poll wets a dry queue.
type reserveCounter struct {
	backends.Backend
	mu sync.Mutex
	n  map[string]int
}

func (c *reserveCounter) Reserve(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	c.mu.Lock()
	c.n[p.Queue]++
	c.mu.Unlock()
	return c.Backend.Reserve(ctx, p)
}

// countReserves runs n jobs of task through w, which serves b over mb,
// stops w once they are done and returns the reserves per queue b counted.
func countReserves(t *testing.T, mb *membackend.Backend, b *reserveCounter, w *worker.Worker, task *queue.Task[Args, queue.None], n int) map[string]int {
	t.Helper()
	worker.Register(w, task, func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
	c := queue.NewClient(mb, queue.Config{})
	reqs := make([]queue.Request, n)
	for i := range reqs {
		reqs[i] = task.Request(Args{}, nil)
	}
	refs, err := c.EnqueueMany(context.Background(), reqs...)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, c: c, w: w}
	e.start()
	for _, r := range refs {
		e.wait(r.ID)
	}
	if err := w.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.n)
}

func TestEmptyQueuesAreNotReservedEveryRound(t *testing.T) {
	mb := membackend.New(membackend.Config{})
	b := &reserveCounter{Backend: mb, n: map[string]int{}}
	qs := []worker.QueueConfig{{Name: "busy"}}
	for i := range 20 {
		qs = append(qs, worker.QueueConfig{Name: fmt.Sprintf("empty-%d", i)})
	}
	// One job at a time: a hundred fetch rounds, each of which used to
	// reserve every empty queue it visited before "busy".
	w := worker.New(b, worker.Config{Queues: qs, Concurrency: 1, FetchLimit: 1, PollInterval: time.Hour})
	n := countReserves(t, mb, b, w, queue.NewTask[Args, queue.None]("busy.task", queue.TaskOptions{Queue: "busy"}), 100)
	for _, q := range qs[1:] {
		if n[q.Name] > 1 {
			t.Errorf("queue %s was reserved %d times over 100 jobs of another queue; a queue found empty waits for the poll (an hour here)", q.Name, n[q.Name])
		}
	}
	if n["busy"] < 100 {
		t.Errorf("busy was reserved %d times for 100 jobs one at a time", n["busy"])
	}
}

// exhaustive is a reserveCounter that says its reserves fill their limit
// while jobs are due, as membackend's do.
type exhaustive struct{ *reserveCounter }

func (exhaustive) ReservesExhaustively() bool { return true }

// A reserve that comes back short from an ExhaustiveReserver dries its
// queue as an empty one would: three jobs against a limit of ten cost one
// reserve, not a second one to find the queue empty.
func TestShortReserveDriesQueue(t *testing.T) {
	mb := membackend.New(membackend.Config{})
	b := &reserveCounter{Backend: mb, n: map[string]int{}}
	w := worker.New(exhaustive{b}, worker.Config{Queues: []worker.QueueConfig{{Name: "q"}}, Concurrency: 10,
		FetchLimit: 10, PollInterval: time.Hour})
	if n := countReserves(t, mb, b, w, queue.NewTask[Args, queue.None]("q.task", queue.TaskOptions{Queue: "q"}), 3); n["q"] != 1 {
		t.Errorf("q was reserved %d times for 3 jobs under a limit of 10, want once", n["q"])
	}
}

func TestNotificationWetsDryQueue(t *testing.T) {
	e := newEnv(t, worker.Config{Queues: []worker.QueueConfig{{Name: "a"}, {Name: "b"}}, PollInterval: time.Hour})
	ta := queue.NewTask[Args, queue.None]("a.task", queue.TaskOptions{Queue: "a"})
	tb := queue.NewTask[Args, queue.None]("b.task", queue.TaskOptions{Queue: "b"})
	for _, task := range []*queue.Task[Args, queue.None]{ta, tb} {
		worker.Register(e.w, task, func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
	}
	e.start()
	// The first round reserves both queues: "b" is found empty and dries
	// for an hour; the enqueue's notification must wet it.
	e.wait(enqueue(t, e.c, ta, Args{}).ID)
	e.wait(enqueue(t, e.c, tb, Args{}).ID)
}

func TestSnoozedJobRunsWhenDueInDryQueue(t *testing.T) {
	e := newEnv(t, worker.Config{PollInterval: time.Hour})
	task := queue.NewTask[Args, queue.None]("snoozes.once", queue.TaskOptions{})
	var mu sync.Mutex
	calls := 0
	worker.Register(e.w, task, func(context.Context, Args) (queue.None, error) {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls == 1 {
			return queue.None{}, retry.Snooze(20 * time.Millisecond)
		}
		return queue.None{}, nil
	})
	e.start()
	// After the snooze the queue holds no due job and dries; no
	// notification comes when the job comes due, and the poll is an hour
	// away: the worker must remember when the job it snoozed is due.
	e.wait(enqueue(t, e.c, task, Args{}).ID)
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Fatalf("handler ran %d times; want 2 (a snooze, then the run)", calls)
	}
}
