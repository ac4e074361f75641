package queue

import (
	"context"
	"fmt"

	"github.com/conveyorhq/conveyor/job"
)

// Handle is a typed reference to an enqueued job.
type Handle[R any] struct {
	JobRef
	c     *Client
	codec Codec
}

// Status returns the job's record.
func (h *Handle[R]) Status(ctx context.Context) (*job.Record, error) {
	return h.c.Job(ctx, h.ID)
}

// Result returns the job's result if it is done. Otherwise the error wraps
// job.ErrNotFinished, job.ErrDeadLettered (with the last error) or
// job.ErrCancelled.
func (h *Handle[R]) Result(ctx context.Context) (R, error) {
	r, err := h.c.Job(ctx, h.ID)
	if err != nil {
		var zero R
		return zero, err
	}
	return h.result(r)
}

// Wait blocks until the job finishes and returns its result, like Result.
func (h *Handle[R]) Wait(ctx context.Context) (R, error) {
	r, err := h.c.WaitFinished(ctx, h.ID)
	if err != nil {
		var zero R
		return zero, err
	}
	return h.result(r)
}

func (h *Handle[R]) result(r *job.Record) (R, error) {
	var out R
	switch r.State {
	case job.Done:
		if len(r.Result) == 0 {
			return out, nil
		}
		if err := h.codec.Decode(r.Result, &out); err != nil {
			return out, fmt.Errorf("%w: result of job %s: %w", job.ErrMalformedPayload, r.ID, err)
		}
		return out, nil
	case job.Dead:
		reason := "no reason recorded"
		if le := r.LastError(); le != nil {
			reason = le.Error
		}
		return out, fmt.Errorf("%w: job %s: %s", job.ErrDeadLettered, r.ID, reason)
	case job.Cancelled:
		return out, fmt.Errorf("%w: job %s", job.ErrCancelled, r.ID)
	}
	return out, fmt.Errorf("%w: job %s is %s", job.ErrNotFinished, r.ID, r.State)
}
