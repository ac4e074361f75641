package worker

import (
	"context"
	"fmt"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// HandlerFunc is a handler as middleware sees it: the raw job in, the
// encoded result out.
type HandlerFunc func(ctx context.Context, j *job.Record) (result []byte, err error)

// Middleware wraps a handler: logging, metrics, tracing, error reporting.
type Middleware func(next HandlerFunc) HandlerFunc

type handler struct {
	def queue.Definition
	fn  HandlerFunc
}

// Register makes w run task t's jobs with h. Call it before Start. It panics
// if the task is already registered, a programming error.
func Register[A, R any](w *Worker, t *queue.Task[A, R], h func(ctx context.Context, args A) (R, error)) {
	fn := func(ctx context.Context, j *job.Record) ([]byte, error) {
		args, err := t.DecodeArgs(j.Payload)
		if err != nil {
			return nil, err
		}
		res, err := h(ctx, args)
		if err != nil {
			return nil, err
		}
		out, err := t.EncodeResult(res)
		if err != nil {
			return nil, fmt.Errorf("encode result: %w", err)
		}
		return out, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, dup := w.handlers[t.Name()]; dup {
		panic("worker.Register: task " + t.Name() + " registered twice")
	}
	w.handlers[t.Name()] = &handler{def: t, fn: w.wrap(fn)}
}

// Task returns the definition of a registered task, for callers that
// enqueue by name (the CLI, the dashboard).
func (w *Worker) Task(name string) (queue.Definition, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok := w.handlers[name]
	if !ok {
		return nil, false
	}
	return h.def, true
}

type jobKey struct{}

// JobFromContext returns the job a handler is running: its ID, attempt
// history, headers.
func JobFromContext(ctx context.Context) (*job.Record, bool) {
	j, ok := ctx.Value(jobKey{}).(*job.Record)
	return j, ok
}
