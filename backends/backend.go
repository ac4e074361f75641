package backends

import (
	"context"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// Backend is the core contract. All methods are safe for concurrent use by
// many goroutines and, for backends that share state across processes, by
// many processes.
//
// Errors are wrapped job sentinels where a caller may branch on them
// (job.ErrQueueFull, job.ErrLeaseLost, job.ErrNotFound, job.ErrFinished,
// job.ErrInvalid); anything else is a backend failure the caller may retry.
type Backend interface {
	// Enqueue inserts a batch of jobs, in one round trip where the backend
	// allows. The batch is all or nothing: if any queue in it would pass
	// its MaxDepth, nothing is inserted and the error wraps
	// job.ErrQueueFull. A job whose UniqueKey is held by an existing job is
	// not inserted; its result carries the existing job's ID and
	// Duplicate=true; so does a job whose ID already exists, which makes a
	// retried Enqueue idempotent. Results are in the order of p.Jobs.
	Enqueue(ctx context.Context, p EnqueueParams) ([]EnqueueResult, error)

	// Reserve leases up to p.Limit due jobs of one queue: waiting jobs whose
	// RunAt has passed and running jobs whose lease expired, highest
	// Priority first, then oldest RunAt, then enqueue order. Each returned
	// record is Running with Deliveries incremented and a fresh Lease.
	// A job that has already been delivered MaxDeliveries times is moved
	// to Dead instead of being returned. A paused queue yields no jobs.
	// Reserve returns an empty slice, not an error, when nothing is due.
	Reserve(ctx context.Context, p ReserveParams) ([]*job.Record, error)

	// Extend pushes each lease's expiry to now+p.Lease. The result for a
	// lease that no longer holds its job has Lost=true; for a job someone
	// asked to stop, CancelRequested=true.
	Extend(ctx context.Context, p ExtendParams) ([]ExtendResult, error)

	// Complete finishes a leased job as Done with its result. It fails with
	// job.ErrLeaseLost if p.Lease no longer holds the job.
	Complete(ctx context.Context, p CompleteParams) error

	// Retry makes a leased job wait until p.At (Pending if p.At has passed).
	// With p.Error set the attempt failed: the error is appended and the
	// job is Retrying. Without it (a snooze, a breaker postponement or a
	// release at shutdown) the job is Scheduled and its delivery is given
	// back, so it uses neither an attempt nor a delivery.
	// Fails with job.ErrLeaseLost if p.Lease no longer holds the job.
	Retry(ctx context.Context, p RetryParams) error

	// DeadLetter moves a leased job to Dead, appending p.Error as the reason.
	// Fails with job.ErrLeaseLost if p.Lease no longer holds the job.
	DeadLetter(ctx context.Context, p DeadLetterParams) error

	// Cancel stops a job. A waiting job becomes Cancelled at once. A
	// running job gets CancelRequested (its worker sees it at its next
	// Extend and cancels the handler's context); when the caller holds the
	// job's lease (p.Lease set), the running job becomes Cancelled. A
	// finished job yields job.ErrFinished, an unknown one job.ErrNotFound.
	// The result is the job's state after the call.
	Cancel(ctx context.Context, p CancelParams) (job.State, error)

	// Close releases the backend's resources. Jobs are not affected.
	Close() error
}

// EnqueueParams is the input of Backend.Enqueue.
type EnqueueParams struct {
	Jobs []*JobInsert
}

// JobInsert is one job to insert. ID, Queue and Task are required.
type JobInsert struct {
	ID       string // chosen by the caller (time-ordered UUIDs from package queue); UTF-8
	Queue    string
	Task     string
	Payload  []byte
	Headers  map[string]string
	Priority int
	// RunAt is when the job becomes due; zero or past means now (Pending),
	// future means Scheduled.
	RunAt         time.Time
	MaxDeliveries int
	Timeout       time.Duration
	RetryPolicy   string
	// UniqueKey, when set, makes the insert a no-op returning the existing
	// job while another job holds the key: until UniqueUntil if set,
	// otherwise until that job finishes.
	UniqueKey   string
	UniqueUntil time.Time
	// MaxDepth bounds the number of unfinished jobs in Queue, this batch
	// included; zero means unbounded. Checked atomically with the insert.
	MaxDepth int
	// Group is the job's tenant within its queue, for FairReserver: jobs
	// of one group wait behind each other, not behind another group's.
	// Default "": one group with every job that sets none.
	Group string
}

// EnqueueResult tells what Enqueue did with one JobInsert.
type EnqueueResult struct {
	ID        string // the inserted job's ID, or the existing job's
	State     job.State
	Duplicate bool // the unique key was held; ID is the existing job
}

// ReserveParams is the input of Backend.Reserve.
type ReserveParams struct {
	Queue  string
	Limit  int           // at least 1
	Lease  time.Duration // how long the lease lasts before Extend
	Worker string        // who holds the lease, for inspection
	// Weights are groups' shares of each round of FairReserver.ReserveFair
	// (a group absent or below 1 has weight 1); Reserve ignores them.
	Weights map[string]int
}

// Weight is group's weight in p.Weights: 1 when absent or below 1.
func (p ReserveParams) Weight(group string) int {
	if w := p.Weights[group]; w > 1 {
		return w
	}
	return 1
}

// ExtendParams is the input of Backend.Extend.
type ExtendParams struct {
	Leases []job.Lease
	Lease  time.Duration
}

// ExtendResult is the outcome for one lease, in the order of ExtendParams.Leases.
type ExtendResult struct {
	JobID           string
	ExpiresAt       time.Time
	Lost            bool
	CancelRequested bool
}

// CompleteParams is the input of Backend.Complete.
type CompleteParams struct {
	Lease  job.Lease
	Result []byte
}

// RetryParams is the input of Backend.Retry.
type RetryParams struct {
	Lease job.Lease
	At    time.Time
	Error *job.AttemptError // nil: a snooze that uses no attempt and no delivery
}

// DeadLetterParams is the input of Backend.DeadLetter.
type DeadLetterParams struct {
	Lease job.Lease
	Error job.AttemptError
}

// CancelParams is the input of Backend.Cancel.
type CancelParams struct {
	JobID string
	Lease *job.Lease // set by the worker that holds the job
}
