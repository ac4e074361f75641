package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/retry"
)

// TaskOptions are a task's defaults. Zero values mean the stated default.
type TaskOptions struct {
	// Queue the task's jobs go to. Default "default".
	Queue string
	// Priority within the queue; higher runs first. Default 0.
	Priority int
	// Timeout bounds one attempt through its context. Default 0: the
	// worker's JobTimeout.
	Timeout time.Duration
	// Retry decides retries after a failed attempt. Default retry.Default().
	Retry *retry.Policy
	// MaxDeliveries bounds how often a job may be handed to a worker,
	// crashes included, before it is dead-lettered as a poison message.
	// Default 25; negative means no bound.
	MaxDeliveries int
	// Breaker names the circuit breaker guarding the downstream this task
	// calls. Default "": no breaker.
	Breaker string
	// Unique makes a job a no-op while an equal one exists. Default nil:
	// no uniqueness.
	Unique *UniqueOptions
	// Codec encodes arguments and results. Default JSON.
	Codec Codec
	// RateLimit lets at most so many of the task's jobs start per
	// interval across every worker (flow.RateLimit). Default nil: no limit.
	RateLimit *flow.RateLimit
	// ConcurrencyLimit lets at most so many of the task's jobs with one
	// key run at once across every worker (flow.ConcurrencyLimit), e.g.
	// one export per account. Default nil: no limit.
	ConcurrencyLimit *flow.ConcurrencyLimit
	// Expires gives each job an expiry this long after enqueue
	// (EnqueueOptions.ExpiresAt wins). Default 0: jobs never expire.
	Expires time.Duration
}

// UniqueOptions derive a unique key from the arguments.
type UniqueOptions struct {
	// Window holds the key this long after enqueue, even once the job has
	// finished. Default 0: held until the job finishes.
	Window time.Duration
}

// DefaultQueue is the queue of tasks that name none.
const DefaultQueue = "default"

// defaultMaxDeliveries is TaskOptions.MaxDeliveries' default: well above
// the default policy's 10 attempts, so only crashes reach it.
const defaultMaxDeliveries = 25

func (o TaskOptions) withDefaults() TaskOptions {
	if o.Queue == "" {
		o.Queue = DefaultQueue
	}
	if o.Retry == nil {
		p := retry.Default()
		o.Retry = &p
	}
	switch {
	case o.MaxDeliveries == 0:
		o.MaxDeliveries = defaultMaxDeliveries
	case o.MaxDeliveries < 0:
		o.MaxDeliveries = 0 // the backend's "no bound"
	}
	if o.Codec == nil {
		o.Codec = JSON{}
	}
	return o
}

// Task is a typed task definition: a name, an argument type A, a result type
// R (None for no result) and defaults. Define it once at package level and
// share it between the code that enqueues and the worker that handles it.
type Task[A, R any] struct {
	name string
	opts TaskOptions
}

// Definition is what every Task is, whatever its types: the worker, the CLI
// and the dashboard handle tasks through it.
type Definition interface {
	Name() string
	Options() TaskOptions
	// RawRequest builds a request from an encoded payload, checking that
	// it decodes into the task's argument type.
	RawRequest(payload []byte, opts *EnqueueOptions) Request
}

// NewTask defines a task. It panics if name is empty, as a definition is
// fixed at startup and an empty name is a programming error.
func NewTask[A, R any](name string, opts TaskOptions) *Task[A, R] {
	if name == "" {
		panic("queue.NewTask: empty task name")
	}
	return &Task[A, R]{name: name, opts: opts.withDefaults()}
}

// Name returns the task's name, which workers dispatch on.
func (t *Task[A, R]) Name() string { return t.name }

// Options returns the task's defaults, with defaults filled in.
func (t *Task[A, R]) Options() TaskOptions { return t.opts }

// Enqueue enqueues one job of this task. A duplicate of a unique job
// returns the existing job's handle with Duplicate set, not an error.
func (t *Task[A, R]) Enqueue(ctx context.Context, c *Client, args A, opts *EnqueueOptions) (*Handle[R], error) {
	refs, err := c.EnqueueMany(ctx, t.Request(args, opts))
	if err != nil {
		return nil, err
	}
	return &Handle[R]{JobRef: refs[0], c: c, codec: t.opts.Codec}, nil
}

// Request builds a request to enqueue with Client.EnqueueMany, for batches.
// An argument that does not encode makes EnqueueMany fail.
func (t *Task[A, R]) Request(args A, opts *EnqueueOptions) Request {
	payload, err := t.opts.Codec.Encode(args)
	if err != nil {
		return Request{err: fmt.Errorf("task %s: encode arguments: %w", t.name, err)}
	}
	return t.request(payload, opts)
}

// RawRequest implements Definition.
func (t *Task[A, R]) RawRequest(payload []byte, opts *EnqueueOptions) Request {
	if _, err := t.DecodeArgs(payload); err != nil {
		return Request{err: err}
	}
	return t.request(payload, opts)
}

func (t *Task[A, R]) request(payload []byte, opts *EnqueueOptions) Request {
	var o EnqueueOptions
	if opts != nil {
		o = *opts
	}
	if err := validID(o.ID); err != nil {
		return Request{err: fmt.Errorf("task %s: %w", t.name, err)}
	}
	ins := &backends.JobInsert{
		ID: o.ID, Task: t.name, Payload: payload, Headers: o.Headers,
		Queue: or(o.Queue, t.opts.Queue), Priority: or(o.Priority, t.opts.Priority),
		Timeout: or(o.Timeout, t.opts.Timeout), MaxDeliveries: t.opts.MaxDeliveries,
		RetryPolicy: o.RetryPolicy, Group: o.Key,
	}
	switch {
	case !o.RunAt.IsZero():
		ins.RunAt = o.RunAt
	case o.Delay > 0:
		ins.RunAt = time.Now().Add(o.Delay)
	}
	ins.Headers = flowHeaders(o, t.opts)
	window := o.UniqueWindow
	switch {
	case o.UniqueKey != "":
		ins.UniqueKey = t.name + ":" + o.UniqueKey
	case t.opts.Unique != nil:
		sum := sha256.Sum256(payload)
		ins.UniqueKey = t.name + ":args:" + hex.EncodeToString(sum[:16])
		window = or(window, t.opts.Unique.Window)
	}
	if ins.UniqueKey != "" && window > 0 {
		ins.UniqueUntil = time.Now().Add(window)
	}
	return t.debounced(Request{ins: ins}, o)
}

// flowHeaders adds the job's key and expiry to a copy of its headers: the
// caller's map is not changed, and a job without either keeps it as given.
func flowHeaders(o EnqueueOptions, t TaskOptions) map[string]string {
	exp := o.ExpiresAt
	if exp.IsZero() && t.Expires > 0 {
		exp = time.Now().Add(t.Expires)
	}
	if o.Key == "" && exp.IsZero() {
		return o.Headers
	}
	h := make(map[string]string, len(o.Headers)+2)
	maps.Copy(h, o.Headers)
	if o.Key != "" {
		h[flow.KeyHeader] = o.Key
	}
	if !exp.IsZero() {
		h[flow.ExpiresHeader] = flow.FormatExpiry(exp)
	}
	return h
}

// DecodeArgs decodes a stored payload into the task's argument type. The
// error wraps job.ErrMalformedPayload.
func (t *Task[A, R]) DecodeArgs(payload []byte) (A, error) {
	var a A
	if err := t.opts.Codec.Decode(payload, &a); err != nil {
		return a, fmt.Errorf("%w: task %s: %w", job.ErrMalformedPayload, t.name, err)
	}
	return a, nil
}

// EncodeResult encodes a handler's result for storage.
func (t *Task[A, R]) EncodeResult(r R) ([]byte, error) {
	if _, none := any(r).(None); none {
		return nil, nil
	}
	return t.opts.Codec.Encode(r)
}

// Handle returns a handle on an existing job of this task, for a caller that
// kept only its ID (say, across HTTP requests).
func (t *Task[A, R]) Handle(c *Client, id string) *Handle[R] {
	return &Handle[R]{JobRef: JobRef{ID: id}, c: c, codec: t.opts.Codec}
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
