package worker_test

import (
	"context"
	"fmt"
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
	task := queue.NewTask[Args, queue.None]("busy.task", queue.TaskOptions{Queue: "busy"})
	worker.Register(w, task, func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
	c := queue.NewClient(mb, queue.Config{})
	var reqs []queue.Request
	for range 100 {
		reqs = append(reqs, task.Request(Args{}, nil))
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
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range qs[1:] {
		if n := b.n[q.Name]; n > 1 {
			t.Errorf("queue %s was reserved %d times over 100 jobs of another queue; a queue found empty waits for the poll (an hour here)", q.Name, n)
		}
	}
	if b.n["busy"] < 100 {
		t.Errorf("busy was reserved %d times for 100 jobs one at a time", b.n["busy"])
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
