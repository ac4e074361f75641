package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// outcomes records what a worker reports per job.
type outcomes struct {
	mu   sync.Mutex
	got  map[string]worker.Outcome
	done chan struct{}
}

func (o *outcomes) Started(*job.Record) {}
func (o *outcomes) Finished(rec *job.Record, out worker.Outcome, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got[rec.ID] = out
	close(o.done)
}

// A handler that succeeds after its job changed hands (here: finished by
// the lease's holder, as a new owner would) has its completion refused;
// the worker reports that as a lost lease, not as a success.
func TestLateCompletionIsReportedAsLeaseLost(t *testing.T) {
	obs := &outcomes{got: map[string]worker.Outcome{}, done: make(chan struct{})}
	task := queue.NewTask[Args, queue.None]("late", queue.TaskOptions{})
	e := newEnv(t, worker.Config{Observer: obs})
	worker.Register(e.w, task, func(ctx context.Context, a Args) (queue.None, error) {
		j, _ := worker.JobFromContext(ctx)
		// Someone else ends the job while this handler still runs.
		_, err := e.b.Cancel(ctx, backends.CancelParams{JobID: j.ID, Lease: &j.Lease})
		return queue.None{}, err
	})
	e.start()
	h := enqueue(t, e.c, task, Args{})
	select {
	case <-obs.done:
	case <-time.After(10 * time.Second):
		t.Fatal("no outcome reported")
	}
	obs.mu.Lock()
	got := obs.got[h.ID]
	obs.mu.Unlock()
	if got != worker.LeaseLost {
		t.Fatalf("outcome of a refused completion = %q, want %q", got, worker.LeaseLost)
	}
	if r := e.wait(h.ID); r.State != job.Cancelled {
		t.Fatalf("job is %s, want the other owner's outcome (cancelled)", r.State)
	}
}

type ctxKey struct{}

// A handler's context carries the values of the context given to Start
// (a logger, a trace set up by main).
func TestHandlerContextDescendsFromStart(t *testing.T) {
	task := queue.NewTask[Args, queue.None]("ctxvalue", queue.TaskOptions{})
	e := newEnv(t, worker.Config{})
	got := make(chan any, 1)
	worker.Register(e.w, task, func(ctx context.Context, a Args) (queue.None, error) {
		got <- ctx.Value(ctxKey{})
		return queue.None{}, ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "from Start"))
	defer cancel()
	if err := e.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.w.Stop(context.Background()) })
	h := enqueue(t, e.c, task, Args{})
	if v := <-got; v != "from Start" {
		t.Fatalf("handler saw %v, want the value from Start's context", v)
	}
	if r := e.wait(h.ID); r.State != job.Done {
		t.Fatalf("job is %s, want done", r.State)
	}
}
