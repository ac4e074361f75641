package job

import "errors"

// Sentinel errors. Backends and the task API wrap them with %w and context;
// callers test them with errors.Is.
var (
	// ErrNotFound: no job (or queue) has that ID.
	ErrNotFound = errors.New("conveyor: job not found")
	// ErrQueueFull: the enqueue would push a queue past its maximum depth.
	// A web handler typically answers 503 or 429.
	ErrQueueFull = errors.New("conveyor: queue full")
	// ErrLeaseLost: the caller's lease on a job expired or was superseded,
	// so another worker may own the job now. The caller must drop its result.
	ErrLeaseLost = errors.New("conveyor: lease lost")
	// ErrFinished: the job is already done, dead or cancelled.
	ErrFinished = errors.New("conveyor: job already finished")
	// ErrInvalid: the request is malformed (missing queue or task name,
	// bad state, negative limit, ...).
	ErrInvalid = errors.New("conveyor: invalid request")
	// ErrUnsupported: the backend lacks the optional capability asked for.
	ErrUnsupported = errors.New("conveyor: not supported by this backend")
	// ErrPayloadTooLarge: an encoded payload exceeds the size limit.
	ErrPayloadTooLarge = errors.New("conveyor: payload too large")
	// ErrUnknownTask: no handler is registered for the job's task name.
	ErrUnknownTask = errors.New("conveyor: unknown task")
	// ErrMalformedPayload: a stored payload could not be decoded.
	ErrMalformedPayload = errors.New("conveyor: malformed payload")
	// ErrClosed: the backend or client was closed.
	ErrClosed = errors.New("conveyor: closed")
	// ErrConflict: a compare-and-set found another version than expected.
	ErrConflict = errors.New("conveyor: version conflict")
	// ErrOutcomeUnknown: a write failed in a way that leaves open whether
	// the backend applied it (the connection broke after the request was
	// sent, the server restarted before it answered). The caller looks the
	// job up, or sends the same write again with the same job ID, which
	// the backend takes as a duplicate rather than a second job.
	ErrOutcomeUnknown = errors.New("conveyor: outcome unknown")
)

// Outcomes of waiting for a job, for callers of Wait and Result.
var (
	// ErrNotFinished: the job has no result yet.
	ErrNotFinished = errors.New("conveyor: job not finished")
	// ErrDeadLettered: the job ended in dead letter; the error says why.
	ErrDeadLettered = errors.New("conveyor: job dead-lettered")
	// ErrCancelled: the job was cancelled.
	ErrCancelled = errors.New("conveyor: job cancelled")
)
