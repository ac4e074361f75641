package job

import "time"

// Record is a job as a backend stores it. Backends fill every field they
// keep; the task API and the worker read it. Payload and Result are opaque
// bytes encoded by the task's codec.
type Record struct {
	ID       string
	Queue    string
	Task     string // the task name the worker dispatches on
	Payload  []byte
	Headers  map[string]string // trace context and other metadata
	Priority int               // higher runs first within a queue
	State    State

	// RunAt is when a waiting job becomes due. For a running job it is when
	// its current delivery was due.
	RunAt      time.Time
	CreatedAt  time.Time
	StartedAt  time.Time // start of the latest delivery; zero if never run
	FinishedAt time.Time // zero until the job is finished

	// Deliveries counts reservations, including ones whose worker crashed
	// or lost its lease. A snooze gives its delivery back.
	Deliveries int
	// MaxDeliveries is the poison-message bound: a job reserved this many
	// times without finishing goes to Dead at its next reservation.
	// Zero means no bound.
	MaxDeliveries int
	// Timeout bounds one attempt; zero means the worker's default.
	Timeout time.Duration
	// RetryPolicy names a retry policy registered with the worker, to use
	// instead of the task's own. Empty means the task's policy.
	RetryPolicy string

	UniqueKey   string
	UniqueUntil time.Time // zero: the key is held until the job finishes

	// Errors holds one entry per failed attempt, oldest first; its length
	// is the number of failed attempts. A dead job's last entry says why.
	Errors []AttemptError
	Result []byte

	// Lease is set on records returned by Reserve and while running.
	Lease Lease
	// CancelRequested is set when someone asked a running job to stop.
	CancelRequested bool
}

// Attempts is the number of failed attempts so far.
func (r *Record) Attempts() int { return len(r.Errors) }

// LastError returns the most recent attempt error, or nil.
func (r *Record) LastError() *AttemptError {
	if len(r.Errors) == 0 {
		return nil
	}
	return &r.Errors[len(r.Errors)-1]
}

// AttemptError records why one attempt failed.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
	Stack   string    `json:"stack,omitempty"` // set when the handler panicked
}

// Lease is a worker's claim on a running job. The token changes at every
// reservation, so a worker whose lease expired cannot finish a job that was
// redelivered to someone else.
type Lease struct {
	JobID     string
	Token     string
	ExpiresAt time.Time
}
