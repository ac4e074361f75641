package daemon

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/worker"
)

// Failure is one failed attempt or dead letter, for App.OnError.
type Failure struct {
	// Job is the delivery that failed (ID, task, queue, payload, headers,
	// earlier attempts).
	Job *job.Record
	// Attempt is the number of this failed attempt, from 1. A job
	// dead-lettered without running (unknown task, poison) has the
	// attempts it had.
	Attempt int
	// Err is the handler's error, its chain intact (errors.Is and
	// errors.As work on it).
	Err error
	// Stack is the goroutine's stack for a handler panic, else "".
	Stack string
	// Dead says the job went to dead letter: it will not run again
	// unless replayed.
	Dead bool
}

// reporter is the middleware and observer behind App.OnError, the
// slow-job warning and the job count that max-jobs recycles on. The
// middleware sees the handler's error; the observer sees what the worker
// made of it once recorded (retried or dead), so the two meet by record.
type reporter struct {
	onError func(context.Context, Failure)
	log     func() *slog.Logger
	slow    *atomic.Int64 // the slow-job threshold in nanoseconds, 0: off
	next    worker.Observer
	// finished counts deliveries finished; onFinished runs after each.
	finished   atomic.Int64
	onFinished func(n int64)

	mu     sync.Mutex
	failed map[*job.Record]failedRun
}

type failedRun struct {
	ctx context.Context
	err error
}

func (r *reporter) middleware(next worker.HandlerFunc) worker.HandlerFunc {
	return func(ctx context.Context, j *job.Record) ([]byte, error) {
		if d := time.Duration(r.slow.Load()); d > 0 {
			start := time.Now()
			t := time.AfterFunc(d, func() {
				r.log().WarnContext(ctx, "slow job: still running past the slow-job threshold",
					"job", j.ID, "task", j.Task, "queue", j.Queue, "running", time.Since(start).Round(time.Millisecond), "threshold", d)
			})
			defer t.Stop()
		}
		res, err := next(ctx, j)
		if err != nil && r.onError != nil {
			r.mu.Lock()
			r.failed[j] = failedRun{ctx: ctx, err: err}
			r.mu.Unlock()
		}
		return res, err
	}
}

// Started implements worker.Observer.
func (r *reporter) Started(rec *job.Record) {
	if r.next != nil {
		r.next.Started(rec)
	}
}

// Finished implements worker.Observer.
func (r *reporter) Finished(rec *job.Record, o worker.Outcome, ran time.Duration) {
	if r.next != nil {
		r.next.Finished(rec, o, ran)
	}
	if r.onError != nil {
		r.mu.Lock()
		f, ok := r.failed[rec]
		delete(r.failed, rec)
		r.mu.Unlock()
		if o == worker.Retried || o == worker.DeadLettered {
			r.report(rec, o, f, ok)
		}
	}
	if n := r.finished.Add(1); r.onFinished != nil {
		r.onFinished(n)
	}
}

func (r *reporter) report(rec *job.Record, o worker.Outcome, f failedRun, ran bool) {
	fl := Failure{Job: rec, Attempt: rec.Attempts(), Err: f.err, Dead: o == worker.DeadLettered}
	ctx := f.ctx
	if ran {
		fl.Attempt++
	} else {
		// Dead without running: the worker's reason is not passed to
		// observers, so say what kind of dead letter it was.
		ctx = context.Background()
		fl.Err = errors.New("dead-lettered before its handler ran (no handler, a payload that does not decode, or too many deliveries)")
	}
	var pe *worker.PanicError
	if errors.As(fl.Err, &pe) {
		fl.Stack = pe.Stack
	}
	func() {
		defer func() {
			if v := recover(); v != nil {
				r.log().Error("App.OnError panicked", "job", rec.ID, "panic", v)
			}
		}()
		r.onError(ctx, fl)
	}()
}
