package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	retrygo "github.com/avast/retry-go/v4"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/retry"
)

// PanicError is a handler panic turned into a failed attempt. Its stack is
// kept in the job's attempt error.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// startJob runs rec in its own goroutine, tracked for heartbeats and drain.
func (w *Worker) startJob(rec *job.Record) {
	l := &longJob{w: w, rec: rec, tracked: true} // longjobs.go
	ctx, cancel := context.WithCancelCause(context.WithValue(w.base, longJobKey{}, l))
	w.mu.Lock()
	w.running[keyOf(rec.Lease)] = &runningJob{rec: rec, cancel: cancel}
	w.perQueue[rec.Queue]++
	w.mu.Unlock()
	w.jobs.Add(1)
	go func() {
		defer l.untrack() // unless the watchdog abandoned it first
		growStack()
		w.execute(ctx, rec)
		cancel(nil)
		w.release(rec)
	}()
}

// growStack gives a new job goroutine an 8 KB stack while it is one frame
// deep. A goroutine starts with 2 KB, and a handler decoding JSON
// arguments needs about 8: grown there instead, the runtime copies the
// stack twice with every worker and middleware frame on it, which cost
// more CPU than anything else a no-op job does in the worker (bench:
// postgres burn-down, 3.7 µs a job). Grown here it is one cheap copy.
//
//go:noinline
func growStack() {
	var pad [5 << 10]byte // with what the runtime keeps free, an 8 KB stack
	if neverTrue {
		keep(pad[:]) // never runs, but the frame must hold pad
	}
}

// neverTrue is false; the compiler cannot know that, so it keeps pad.
var neverTrue bool

//go:noinline
func keep([]byte) {}

// release frees rec's slot. finish calls it as soon as the handler has
// returned, before the outcome is recorded, so the next job starts while
// the completion waits for its group commit; the job's goroutine lives on
// (and Stop waits for it) until the outcome is written. Releasing twice is
// a no-op.
func (w *Worker) release(rec *job.Record) {
	w.mu.Lock()
	rj, held := w.running[keyOf(rec.Lease)]
	held = held && rj.rec == rec
	if held {
		delete(w.running, keyOf(rec.Lease))
		w.perQueue[rec.Queue]--
	}
	w.mu.Unlock()
	if held {
		w.signal()
	}
}

// execute runs one delivery of a job and records its outcome. ctx is
// cancelled, with a cause, when the lease is lost, the job is cancelled or
// the worker shuts down.
func (w *Worker) execute(ctx context.Context, rec *job.Record) {
	ctx, l := w.longJobFor(ctx, rec)
	// Every delivery counts as started, also one no handler can run, so
	// that each Finished has its Started.
	if w.cfg.Observer != nil {
		w.cfg.Observer.Started(rec)
	}
	if w.reg.kv != nil && !rec.StartedAt.IsZero() {
		w.reg.pickups.add(rec.StartedAt.Sub(rec.RunAt))
	}
	w.mu.Lock()
	h := w.handlers[rec.Task]
	w.mu.Unlock()
	if h == nil {
		w.finish(ctx, rec, nil, nil, w.noHandler(rec), 0)
		return
	}
	opts := h.def.Options()
	if err := w.admit(ctx, rec, opts); err != nil { // expiry and limits (limits.go)
		w.finish(ctx, rec, h, nil, err, 0)
		w.releaseSlot(rec) // one its reserve took (reserveSlots) is held until the outcome
		return
	}
	defer w.releaseSlot(rec)
	timeout := rec.Timeout
	if timeout <= 0 {
		timeout = opts.Timeout
	}
	if timeout <= 0 {
		timeout = w.cfg.JobTimeout
	}
	start := time.Now()
	jctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrTimeout)
	jctx = context.WithValue(jctx, jobKey{}, rec)
	// h.fn recovers handler panics inside the middleware; this recovers
	// panics in the middleware itself.
	call := func() ([]byte, error) { return safeCall(jctx, h.fn, rec) }
	var res []byte
	var err error
	// A handler that ignores jctx's end past Config.CancelGrace is
	// abandoned (longjobs.go).
	returned := l.watch(jctx, func(ignored time.Duration) { w.abandon(ctx, jctx, rec, h, l, ignored, time.Since(start)) })
	if opts.Breaker != "" {
		res, err = w.brk.get(opts.Breaker).execute(call)
	} else {
		res, err = call()
	}
	returned()
	cancel()
	w.finish(ctx, rec, h, res, err, time.Since(start))
}

// safeCall turns a panic into a PanicError.
func safeCall(ctx context.Context, fn HandlerFunc, rec *job.Record) (res []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: string(debug.Stack())}
		}
	}()
	return fn(ctx, rec)
}

// wrap applies the middleware to a handler, panic recovery innermost so that
// middleware sees a panic as an error.
func (w *Worker) wrap(fn HandlerFunc) HandlerFunc {
	fn = recovering(fn)
	for i := len(w.cfg.Middleware) - 1; i >= 0; i-- {
		fn = w.cfg.Middleware[i](fn)
	}
	return fn
}

func recovering(fn HandlerFunc) HandlerFunc {
	return func(ctx context.Context, j *job.Record) ([]byte, error) { return safeCall(ctx, fn, j) }
}

// finish records the outcome of one delivery with the backend and tells
// the Observer, if any.
func (w *Worker) finish(ctx context.Context, rec *job.Record, h *handler, res []byte, err error, ran time.Duration) {
	now := time.Now()
	cause := context.Cause(ctx)
	// Built only when something is logged: a job that succeeds logs nothing.
	log := func() *slog.Logger { return w.log.With("job", rec.ID, "task", rec.Task, "queue", rec.Queue) }
	var op func(context.Context) error
	var outcome Outcome
	_, l := w.longJobFor(ctx, rec)
	defer func() {
		if w.cfg.Observer != nil && l.report() { // once, also when abandoned
			if l.isAbandoned() {
				outcome = Abandoned
			}
			w.cfg.Observer.Finished(rec, outcome, ran)
		}
	}()
	switch {
	case err == nil:
		outcome = Succeeded
		p := backends.CompleteParams{Lease: rec.Lease, Result: res}
		op = func(c context.Context) error {
			if w.cmp != nil && !l.isAbandoned() { // a late return may come after Stop ended the completer
				return w.cmp.complete(c, p)
			}
			return w.b.Complete(c, p)
		}
	case errors.Is(cause, job.ErrLeaseLost):
		outcome = LeaseLost
		log().Warn("lease lost while running; the job's new owner will finish it", "err", err)
		l.end(nil)
		return
	case errors.Is(cause, ErrShutdown), errors.Is(err, ErrShutdown): // the latter: Iterate stopped at a drain
		outcome, op = Released, w.retryAt(rec, now, nil) // no attempt used
	case errors.Is(cause, ErrCancelRequested):
		outcome = Cancelled
		op = func(c context.Context) error {
			_, err := w.b.Cancel(c, backends.CancelParams{JobID: rec.ID, Lease: &rec.Lease})
			return err
		}
	default:
		outcome, op = w.failure(rec, h, now, err, log())
	}
	w.release(rec)
	// The backend may blip; a few quick retries keep the outcome. If they
	// fail the lease expires and the job runs again: at least once.
	fctx, cancel := context.WithTimeout(context.Background(), w.cfg.LeaseDuration)
	defer cancel()
	retryable := func(err error) bool { return !errors.Is(err, job.ErrLeaseLost) && !errors.Is(err, job.ErrFinished) }
	// The last progress and log lines go while the lease holds.
	l.end(fctx)
	ferr := op(fctx) // the common case, without setting up retries
	if ferr != nil && retryable(ferr) {
		ferr = retrygo.Do(func() error { return op(fctx) },
			retrygo.Context(fctx), retrygo.Attempts(2), retrygo.Delay(50*time.Millisecond), retrygo.LastErrorOnly(true),
			retrygo.RetryIf(retryable),
		)
	}
	switch {
	case ferr == nil:
	case !retryable(ferr):
		// Another delivery owns or already finished the job: what this one
		// did is discarded, whatever it was.
		log().Warn("lease lost before the outcome was recorded; outcome discarded", "outcome", outcome, "err", ferr)
		outcome = LeaseLost
	default:
		log().Error("recording the job's outcome failed; it will be redelivered after its lease", "outcome", outcome, "err", ferr)
		outcome = Unrecorded
	}
}

// failure decides what a failed attempt leads to: a postponement that uses
// no attempt, a retry, or dead letter.
func (w *Worker) failure(rec *job.Record, h *handler, now time.Time, err error, log *slog.Logger) (Outcome, func(context.Context) error) {
	var be *errBreakerOpen
	if errors.As(err, &be) {
		return Postponed, w.retryAt(rec, be.until, nil)
	}
	if d, ok := retry.SnoozeDelay(err); ok {
		return Postponed, w.retryAt(rec, now.Add(d), nil)
	}
	ae := job.AttemptError{Attempt: rec.Attempts() + 1, At: now, Error: err.Error()}
	var nh *noHandlerError
	if errors.As(err, &nh) {
		return w.unknownTask(rec, now, ae, log) // not a failed attempt: logged its own way
	}
	var pe *PanicError
	if errors.As(err, &pe) {
		ae.Stack = pe.Stack
	}
	if errors.Is(err, job.ErrUnknownTask) || errors.Is(err, job.ErrMalformedPayload) || errors.Is(err, flow.ErrExpired) {
		w.logFailed(log, ae, DeadLettered, err, "reason", "cannot run")
		return DeadLettered, w.deadLetter(rec, ae)
	}
	first := rec.StartedAt
	if len(rec.Errors) > 0 {
		first = rec.Errors[0].At
	}
	d := w.policy(rec, h).Decide(retry.Attempt{Number: ae.Attempt, Elapsed: now.Sub(first), Err: err})
	if !d.Retry {
		if !retry.IsPermanent(err) { // its message already says so
			ae.Error = d.Reason + ": " + ae.Error
		}
		w.logFailed(log, ae, DeadLettered, err, "reason", d.Reason)
		return DeadLettered, w.deadLetter(rec, ae)
	}
	w.logFailed(log, ae, Retried, err, "retry_in", d.Delay)
	return Retried, w.retryAt(rec, now.Add(d.Delay), &ae)
}

// logFailed logs a failed attempt and what comes of it as a warning, on by
// default so that failures show up without any setup, as in Sidekiq or
// Celery. With Config.QuietFailedAttempts only a dead letter is logged, at
// Info: the app reports attempts its own way.
func (w *Worker) logFailed(log *slog.Logger, ae job.AttemptError, next Outcome, err error, attrs ...any) {
	attrs = append([]any{"attempt", ae.Attempt, "err", err, "outcome", next}, attrs...)
	switch {
	case !w.cfg.QuietFailedAttempts:
		log.Warn("job attempt failed", attrs...)
	case next == DeadLettered:
		log.Info("job dead-lettered", attrs...)
	}
}

func (w *Worker) policy(rec *job.Record, h *handler) retry.Policy {
	if rec.RetryPolicy != "" {
		if p, ok := w.cfg.RetryPolicies[rec.RetryPolicy]; ok {
			return p
		}
		w.log.Warn("job names an unknown retry policy; using its task's", "job", rec.ID, "policy", rec.RetryPolicy)
	}
	return *h.def.Options().Retry
}

func (w *Worker) retryAt(rec *job.Record, at time.Time, ae *job.AttemptError) func(context.Context) error {
	return func(c context.Context) error {
		err := w.b.Retry(c, backends.RetryParams{Lease: rec.Lease, At: at, Error: ae})
		if err == nil {
			w.dry.dueAt(rec.Queue, at) // a reserve finds it then, poll or not
			// The fetch loop may have gone to sleep before the due time
			// was known (the reserve that freed nothing ran while this
			// retry was in flight): it wakes to sleep until then instead.
			w.signal()
		}
		return err
	}
}

func (w *Worker) deadLetter(rec *job.Record, ae job.AttemptError) func(context.Context) error {
	return func(c context.Context) error {
		return w.b.DeadLetter(c, backends.DeadLetterParams{Lease: rec.Lease, Error: ae})
	}
}
