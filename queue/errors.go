package queue

import (
	"fmt"
	"strings"

	"github.com/conveyorhq/conveyor/job"
)

// Errors a caller of this package branches on, re-exported from package job
// so that one import reaches them all.
var (
	ErrQueueFull       = job.ErrQueueFull
	ErrNotFound        = job.ErrNotFound
	ErrPayloadTooLarge = job.ErrPayloadTooLarge
	ErrUnsupported     = job.ErrUnsupported
	ErrInvalid         = job.ErrInvalid
	ErrClosed          = job.ErrClosed
	ErrOutcomeUnknown  = job.ErrOutcomeUnknown
	ErrNotFinished     = job.ErrNotFinished
	ErrDeadLettered    = job.ErrDeadLettered
	ErrCancelled       = job.ErrCancelled
)

// OutcomeUnknownError is an enqueue that failed after its request may have
// reached the backend: the jobs may or may not have been stored. It wraps
// ErrOutcomeUnknown and the last error seen. To settle it, look the IDs up
// (Client.Job), or enqueue the same requests again with these IDs
// (EnqueueOptions.ID): a job that was stored comes back as a duplicate, not
// as a second job.
type OutcomeUnknownError struct {
	IDs []string // the jobs of the batch, in request order
	Err error    // the last error the backend returned
}

func (e *OutcomeUnknownError) Error() string {
	ids := strings.Join(e.IDs, ", ")
	if len(e.IDs) > 3 {
		ids = strings.Join(e.IDs[:3], ", ") + fmt.Sprintf(" and %d more", len(e.IDs)-3)
	}
	return fmt.Sprintf("%v: jobs %s may have been stored: %v", job.ErrOutcomeUnknown, ids, e.Err)
}

func (e *OutcomeUnknownError) Unwrap() []error { return []error{job.ErrOutcomeUnknown, e.Err} }

// maxIDLen bounds a caller-chosen job ID: it becomes part of storage keys
// and message properties on every backend.
const maxIDLen = 128

// validID checks a caller-chosen job ID; empty means "make one".
func validID(id string) error {
	if len(id) > maxIDLen {
		return fmt.Errorf("%w: job ID is %d bytes, at most %d", job.ErrInvalid, len(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%w: job ID %q has byte %#x at %d; use printable ASCII without spaces", job.ErrInvalid, id, c, i)
		}
	}
	return nil
}
