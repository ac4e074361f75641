package queue

import (
	"context"
	"time"

	"github.com/conveyorhq/conveyor/backends"
)

// EnqueueOptions override a task's defaults for one enqueue. Zero values
// keep the task's default.
type EnqueueOptions struct {
	// ID is the job's ID, chosen by the caller so that enqueueing again
	// after an error whose outcome is unknown (ErrOutcomeUnknown), even
	// from another process, cannot make a second job: while a job with
	// this ID exists, the enqueue returns it with Duplicate set. At most
	// 128 printable ASCII characters, no spaces. Default: a new
	// time-ordered UUID.
	ID string
	// Queue overrides TaskOptions.Queue.
	Queue string
	// Priority overrides TaskOptions.Priority when non-zero.
	Priority int
	// Delay runs the job no sooner than this from now. RunAt wins if both
	// are set.
	Delay time.Duration
	// RunAt runs the job no sooner than this time.
	RunAt time.Time
	// UniqueKey makes the enqueue a no-op returning the existing job while
	// another job of this task holds the same key. It replaces the key that
	// TaskOptions.Unique derives from the arguments.
	UniqueKey string
	// UniqueWindow holds the key this long after enqueue, even once the job
	// has finished. Default: TaskOptions.Unique's window, else held until
	// the job finishes.
	UniqueWindow time.Duration
	// Timeout overrides TaskOptions.Timeout.
	Timeout time.Duration
	// RetryPolicy names a policy registered with the workers
	// (worker.Config.RetryPolicies) to use instead of the task's.
	RetryPolicy string
	// Headers travel with the job to its handler: trace context, tenant, ...
	Headers map[string]string
	// Key is the job's key for limits per key (flow.ByJobKey): a tenant,
	// an account, a store. Stored in the header flow.KeyHeader, and the
	// job's group (backends.JobInsert.Group) in a fair queue
	// (worker.QueueConfig.Fair). Default "": the job shares the empty key
	// with every job without one.
	Key string
	// ExpiresAt is when the job expires: a worker that reserves it later
	// does not run it but dead-letters it with the reason "expired: not
	// started by <time>". Stored in the header flow.ExpiresHeader.
	// Default: TaskOptions.Expires after enqueue, else never.
	ExpiresAt time.Time
	// Debounce makes a burst of enqueues under one key one job, run with
	// the last enqueue's arguments once the key has been quiet for a
	// window (see Debounce). The backend must be a backends.Debouncer,
	// otherwise the enqueue fails with ErrUnsupported. Default nil: every
	// enqueue makes a job.
	Debounce *Debounce
}

// Debounce is EnqueueOptions.Debounce (BullMQ's debounce that replaces and
// extends). An enqueue whose key matches a job of the same task and queue
// that is still waiting replaces that job's arguments and headers and
// pushes its start back to Window from now, but never past MaxWait after
// the job's first enqueue; its JobRef names that job with Duplicate set.
// Once the key's job is running or finished, the next enqueue makes a new
// job. A debounced request is enqueued alone (not in a batch, not in a
// transaction) and without a unique key or a run time of its own.
type Debounce struct {
	// Key is what enqueues are debounced by, within the task and queue:
	// an account to re-index, a document to render. Required.
	Key string
	// Window is how long the key must be quiet before its job starts.
	// Required.
	Window time.Duration
	// MaxWait bounds how long enqueues may push the job back, counted
	// from its first enqueue, so that a key enqueued without pause still
	// runs. Default 0: no bound.
	MaxWait time.Duration
}

// Config configures a Client. Zero values mean the stated default.
type Config struct {
	// Queues are the queues this client defines (NewQueue): their bounds
	// are stored in the backend (when it is a backends.KVStore) and read
	// back by every process, so an operator's change holds everywhere.
	// A queue neither listed nor stored is unbounded.
	Queues []*Queue
	// MaxPayloadBytes refuses larger encoded arguments at enqueue with
	// ErrPayloadTooLarge. Default 1 MiB; negative means no limit.
	MaxPayloadBytes int
	// Inline, when set, runs due jobs in the caller's goroutine right after
	// each enqueue, so Enqueue returns with the job finished: Django's
	// immediate backend, for tests. A *worker.Worker with the tasks
	// registered is an InlineRunner. Default nil: jobs wait for workers.
	Inline InlineRunner
	// Observer hears every enqueue and every refusal by a full queue, for
	// metrics (see package metrics). Default nil.
	Observer Observer
	// Tracer traces every enqueue and may add trace context to the jobs'
	// headers (see package tracing). Default nil.
	Tracer EnqueueTracer
}

// EnqueueTracer traces enqueues. StartEnqueue runs before the backend call
// with the jobs about to be inserted, whose Headers it may replace (with a
// copy holding the trace context the worker's span continues from); the
// function it returns is called with the enqueue's outcome.
type EnqueueTracer interface {
	StartEnqueue(ctx context.Context, jobs []*backends.JobInsert) (end func(error))
}

// Observer hears what a Client enqueues. Its methods must be quick and
// safe for concurrent use: they run on the enqueuing goroutine.
type Observer interface {
	// Enqueued reports n new jobs in queue (duplicates not counted).
	Enqueued(queue string, n int)
	// Rejected reports an enqueue of n jobs refused because queue was full.
	Rejected(queue string, n int)
}

// InlineRunner runs the jobs that are due now; see Config.Inline.
type InlineRunner interface {
	WorkDue(ctx context.Context) (int, error)
}

const defaultMaxPayloadBytes = 1 << 20
