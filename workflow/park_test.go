package workflow

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// parkRig is an engine that never reconciles on a memory backend, and a
// worker of four on queue wf with the engine installed.
func parkRig(t *testing.T) (*queue.Client, *Engine, *worker.Worker) {
	return rigOn(t, membackend.New(membackend.Config{}))
}

// rigOn is parkRig on backend b.
func rigOn(t *testing.T, b backends.Backend) (*queue.Client, *Engine, *worker.Worker) {
	t.Helper()
	c := queue.NewClient(b, queue.Config{})
	e, err := NewEngine(c, Config{ReconcileEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return c, e, worker.New(b, e.Install(worker.Config{
		Queues: []worker.QueueConfig{{Name: "wf", Concurrency: 4}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
}

// running runs e and w until the test ends, and returns their context.
func running(t *testing.T, e *Engine, w *worker.Worker) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Run(ctx) }()
	if err := w.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()); cancel(); <-done })
	return ctx
}

// Outcomes that release nothing are parked, not lost: with the last member
// held back, the record still gets the others' outcomes (within parkFor,
// no reconcile), and once the last finishes the callback runs and nothing
// stays parked.
func TestParkedOutcomesAreWritten(t *testing.T) {
	c, e, w := parkRig(t)
	last := make(chan struct{})
	worker.Register(w, step, func(ctx context.Context, a nArgs) (int, error) {
		if a.N == 3 {
			select {
			case <-last:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		return a.N, nil
	})
	registerSum(w)
	ctx := running(t, e, w)

	root := Chord(Task("sum", sumStep, nArgs{}, nil), Task("m1", step, nArgs{1}, nil), Task("m2", step, nArgs{2}, nil), Task("m3", step, nArgs{3}, nil))
	ref, err := Enqueue(ctx, c, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		in, err := Status(ctx, c, ref.ID)
		if err != nil {
			t.Fatal(err)
		}
		if in.Steps[0].State == StepDone && in.Steps[1].State == StepDone {
			if in.Steps[2].State != StepEnqueued || in.Steps[3].State != StepBlocked {
				t.Fatalf("m3 %s, sum %s; want enqueued and blocked", in.Steps[2].State, in.Steps[3].State)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("m1 and m2 finished, the record still says %s and %s", in.Steps[0].State, in.Steps[1].State)
		}
		time.Sleep(5 * time.Millisecond) // polling the record: nothing signals its write
	}
	close(last)
	outs, err := Wait(ctx, c, ref.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got int
	if err := outs[0].Decode(&got); err != nil || got != 6 {
		t.Fatalf("sum = %d (%v); want 6", got, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.parked) != 0 {
		t.Fatalf("still parked after the workflow finished: %v", e.parked)
	}
}

// Run writes what it holds as it stops: a workflow whose outcomes were
// parked when Run's context ended has them in its record at once, not
// after another engine's reconcile.
func TestRunWritesParkedOutcomesWhenItStops(t *testing.T) {
	ctx := context.Background()
	c, e, w := parkRig(t)
	last := make(chan struct{})
	worker.Register(w, step, func(ctx context.Context, a nArgs) (int, error) {
		if a.N == 2 {
			<-last
		}
		return a.N, nil
	})
	registerSum(w)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Run(runCtx) }()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { close(last); _ = w.Stop(ctx) }()
	root := Chord(Task("sum", sumStep, nArgs{}, nil), Task("m1", step, nArgs{1}, nil), Task("m2", step, nArgs{2}, nil))
	ref, err := Enqueue(ctx, c, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		e.mu.Lock()
		_, parked := e.parked[ref.ID]
		e.mu.Unlock()
		if parked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("m1's outcome was never parked")
		}
		time.Sleep(time.Millisecond) // polling the engine: nothing signals a parking
	}
	stop()
	<-done
	in, err := Status(ctx, c, ref.ID)
	if err != nil {
		t.Fatal(err)
	}
	if in.Steps[0].State != StepDone {
		t.Fatalf("m1 is %s in the record after Run stopped; want done", in.Steps[0].State)
	}
}
