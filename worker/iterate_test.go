package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// kvOnly is the memory backend without its Annotator: the worker keeps
// the notes in its KVStore (backends.AnnotateKV).
type kvOnly struct {
	backends.Backend
	backends.Inspector
	backends.KVStore
	backends.Notifier
}

// longBackends are the backends the long-job tests run on: both embedded,
// and the KVStore fallback, each on a clock the test steps to make a
// lease expire.
func longBackends(t *testing.T) map[string]func(clock backends.Clock) backends.Backend {
	return map[string]func(clock backends.Clock) backends.Backend{
		"memory": func(clock backends.Clock) backends.Backend { return membackend.New(membackend.Config{Clock: clock}) },
		"kv-fallback": func(clock backends.Clock) backends.Backend {
			b := membackend.New(membackend.Config{Clock: clock})
			return kvOnly{b, b, b, b}
		},
		"sqlite": func(clock backends.Clock) backends.Backend {
			b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "q.db"), Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b
		},
	}
}

var Export = queue.NewTask[Args, int]("test.export", queue.TaskOptions{})

// ledger counts how often each batch completed, and by which worker.
type ledger struct {
	mu    sync.Mutex
	count map[int]int
	by    map[int]string
}

func (l *ledger) done(batch int, worker string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count[batch]++
	if l.by[batch] == "" {
		l.by[batch] = worker
	}
}

// TestIterateResumes runs a 100-batch job with a checkpoint after each
// batch through a drain (worker A stops after batch 30) and a crash
// (worker B hangs in batch 61 and its lease runs out): B resumes at 31, C
// at 61, and every batch completes once but the one B had in flight.
func TestIterateResumes(t *testing.T) {
	for name, open := range longBackends(t) {
		t.Run(name, func(t *testing.T) {
			clock := &backendtest.Clock{}
			b := open(clock)
			c := queue.NewClient(b, queue.Config{})
			led := &ledger{count: map[int]int{}, by: map[int]string{}}
			atDrain := make(chan struct{})
			hung, unhang := make(chan struct{}), make(chan struct{})
			newWorker := func(id string) *worker.Worker {
				w := worker.New(b, worker.Config{ID: id, Concurrency: 1, PollInterval: 10 * time.Millisecond,
					LeaseDuration: time.Minute, CancelGrace: -1, Logger: slog.New(slog.DiscardHandler)})
				worker.Register(w, Export, func(ctx context.Context, a Args) (int, error) {
					err := worker.Iterate(ctx, func(ctx context.Context, cur int) (int, bool, error) {
						batch := cur + 1
						switch {
						case id == "A" && batch == 30:
							close(atDrain)
							<-worker.Draining(ctx) // the drain begins during batch 30
						case id == "B" && batch == 61:
							close(hung)
							<-unhang // a worker that stopped: no heartbeat, no write
						}
						led.done(batch, id)
						return batch, batch == a.N, nil
					})
					return a.N, err
				})
				if err := w.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				return w
			}
			ctx := context.Background()
			h, err := Export.Enqueue(ctx, c, Args{N: 100}, nil)
			if err != nil {
				t.Fatal(err)
			}

			// Waits fail with the job's state, not the package's timeout.
			await := func(ch <-chan struct{}, what string) {
				t.Helper()
				select {
				case <-ch:
				case <-time.After(30 * time.Second):
					r, err := h.Status(ctx)
					t.Fatalf("no %s in 30s; the job: %+v, %v", what, r, err)
				}
			}
			a := newWorker("A")
			await(atDrain, "batch 30 on A")
			if err := a.Stop(ctx); err != nil { // drains: A finishes batch 30 and releases the job
				t.Fatalf("A's drain: %v", err)
			}
			r, err := h.Status(ctx)
			if err != nil || r.State.Finished() || r.Attempts() != 0 {
				t.Fatalf("after the drain: %+v, %v; want a waiting job, no attempt used", r, err)
			}

			bw := newWorker("B")
			await(hung, "batch 61 on B")
			// B is as good as dead: its lease runs out on the backend's
			// clock, and C takes the job.
			clock.Advance(2 * time.Minute)
			cw := newWorker("C")
			res, err := h.Wait(ctx)
			if err != nil || res != 100 {
				t.Fatalf("result %d, %v", res, err)
			}
			close(unhang) // B's late batch and checkpoint are refused
			stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_ = bw.Stop(stopCtx)
			_ = cw.Stop(stopCtx)

			led.mu.Lock()
			defer led.mu.Unlock()
			twice := 0
			for batch := 1; batch <= 100; batch++ {
				switch n := led.count[batch]; {
				case n == 2:
					twice++
				case n != 1:
					t.Fatalf("batch %d completed %d times", batch, n)
				}
			}
			if twice > 1 {
				t.Fatalf("%d batches ran twice; at most the one in flight may", twice)
			}
			if led.by[30] != "A" || led.by[31] != "B" || led.by[60] != "B" || led.by[61] != "C" || led.by[100] != "C" {
				t.Fatalf("batches 30, 31, 60, 61, 100 by %s %s %s %s %s; want A B B C C",
					led.by[30], led.by[31], led.by[60], led.by[61], led.by[100])
			}
			n, err := c.Notes(ctx, h.ID)
			if err != nil || string(n.Checkpoint) != "100" {
				t.Fatalf("final checkpoint %q, %v", n.Checkpoint, err)
			}
			// A's release at the drain gave its delivery back: B's and C's count.
			if r, _ := h.Status(ctx); r.State != job.Done || r.Deliveries != 2 || r.Attempts() != 0 {
				t.Fatalf("job %s after %d deliveries, %d attempts; want done after 2 and none", r.State, r.Deliveries, r.Attempts())
			}
		})
	}
}

// slowReserve is a memory backend whose reserves take 2ms to reach it,
// as a server's do on a loaded machine, and then cannot be called back:
// the request is sent.
type slowReserve struct{ *membackend.Backend }

func (s slowReserve) Reserve(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	time.Sleep(2 * time.Millisecond) // the fault: a reserve in flight while Stop begins
	return s.Backend.Reserve(context.WithoutCancel(ctx), p)
}

// A worker stops fetching before its handlers learn of the drain: a job
// released at the drain is due at once, and a reserve still in flight
// took it back and ran it again (seen as batches past the drain in
// TestIterateResumes, about 1 run in 70 under load). Short drains, each
// with the job's handler returning as soon as the drain begins, and a
// free slot so that the fetch loop keeps reserving meanwhile: the handler
// runs once per worker.
func TestDrainedWorkerTakesNothingBack(t *testing.T) {
	task := queue.NewTask[Args, int]("test.drain", queue.TaskOptions{})
	for i := range 20 {
		b := slowReserve{membackend.New(membackend.Config{})}
		var runs atomic.Int32
		started := make(chan struct{}, 1)
		w := worker.New(b, worker.Config{Concurrency: 2, PollInterval: time.Millisecond, CancelGrace: -1,
			Logger: slog.New(slog.DiscardHandler)})
		worker.Register(w, task, func(ctx context.Context, _ Args) (int, error) {
			runs.Add(1)
			select {
			case started <- struct{}{}:
			default:
			}
			<-worker.Draining(ctx)
			return 0, fmt.Errorf("released at the drain: %w", worker.ErrShutdown)
		})
		if _, err := task.Enqueue(context.Background(), queue.NewClient(b, queue.Config{}), Args{}, nil); err != nil {
			t.Fatal(err)
		}
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-started
		if err := w.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := runs.Load(); n != 1 {
			t.Fatalf("drain %d: the handler ran %d times on the draining worker, want 1", i, n)
		}
	}
}
