package worker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// redelivering hands the first job it reserves out twice, under two lease
// tokens, as a broker does that delivers one message twice (at-least-once:
// the AMQP backend with a store can hold two messages of one job). Both
// run and are heartbeated; the second's Complete finds its lease lost, as
// a store does whose record the first delivery's lease holds.
type redelivering struct {
	*membackend.Backend
	mu    sync.Mutex
	again string // the second delivery's token, once handed out
}

func (r *redelivering) Reserve(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	recs, err := r.Backend.Reserve(ctx, p)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.again == "" && len(recs) > 0 && len(recs) < p.Limit {
		dup := *recs[0]
		dup.Lease.Token = "again-" + dup.Lease.Token
		r.again = dup.Lease.Token
		recs = append(recs, &dup)
	}
	return recs, err
}

func (r *redelivering) lost(l job.Lease) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return l.Token == r.again
}

func (r *redelivering) Extend(ctx context.Context, p backends.ExtendParams) ([]backends.ExtendResult, error) {
	var mine []job.Lease
	for _, l := range p.Leases {
		if !r.lost(l) {
			mine = append(mine, l)
		}
	}
	res, err := r.Backend.Extend(ctx, backends.ExtendParams{Leases: mine, Lease: p.Lease})
	if err != nil {
		return nil, err
	}
	out := make([]backends.ExtendResult, 0, len(p.Leases))
	for _, l := range p.Leases {
		if r.lost(l) {
			out = append(out, backends.ExtendResult{JobID: l.JobID, ExpiresAt: time.Now().Add(p.Lease)})
			continue
		}
		out, res = append(out, res[0]), res[1:]
	}
	return out, nil
}

func (r *redelivering) Complete(ctx context.Context, p backends.CompleteParams) error {
	if r.lost(p.Lease) {
		return fmt.Errorf("redelivered: %w", job.ErrLeaseLost)
	}
	return r.Backend.Complete(ctx, p)
}

// Two deliveries of one job running at once in one worker are two running
// jobs: each holds its own slot and gives it back. Keyed by job ID, the
// second overwrote the first, and the queue's slot count never came back
// down (the next two jobs could not run side by side).
func TestTwoDeliveriesOfOneJobRunSideBySide(t *testing.T) {
	b := &redelivering{Backend: membackend.New(membackend.Config{})}
	task := queue.NewTask[Args, queue.None]("meet", queue.TaskOptions{Queue: "pairs"})
	w := worker.New(b, worker.Config{Concurrency: 2, PollInterval: 20 * time.Millisecond, Queues: []worker.QueueConfig{{Name: "pairs", Concurrency: 2}}})
	// meet returns once two handlers of group N run at the same time.
	var mu sync.Mutex
	arrived := map[int]int{}
	met := map[int]chan struct{}{}
	worker.Register(w, task, func(ctx context.Context, a Args) (queue.None, error) {
		mu.Lock()
		if met[a.N] == nil {
			met[a.N] = make(chan struct{})
		}
		ch := met[a.N]
		if arrived[a.N]++; arrived[a.N] == 2 {
			close(ch)
		}
		mu.Unlock()
		select {
		case <-ch:
			return queue.None{}, nil
		case <-time.After(5 * time.Second):
			return queue.None{}, fmt.Errorf("group %d: no second handler ran beside this one", a.N)
		}
	})
	ctx := context.Background()
	c := queue.NewClient(b, queue.Config{})
	first := enqueue(t, c, task, Args{N: 0}) // delivered twice: the pair of group 0
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	wait := func(id string) *job.Record {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		r, err := c.WaitFinished(wctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := wait(first.ID); r.State != job.Done || len(r.Errors) > 0 {
		t.Fatalf("the twice-delivered job ended %s: %v", r.State, r.Errors)
	}
	waitFor(t, func() bool { return w.Running() == 0 })

	// The pair's slots are free again: two jobs of group 1 meet.
	var pair []string
	for range 2 {
		pair = append(pair, enqueue(t, c, task, Args{N: 1}).ID)
	}
	for _, id := range pair {
		if r := wait(id); r.State != job.Done || len(r.Errors) > 0 {
			var errs []string
			for _, e := range r.Errors {
				errs = append(errs, e.Error)
			}
			t.Fatalf("job %s ended %s: %s", id, r.State, strings.Join(errs, "; "))
		}
	}
}
