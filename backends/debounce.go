package backends

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// Debouncer enqueues jobs that stand for "do this once things settle": a
// burst of enqueues under one key makes one job, run with the last one's
// arguments a Window after the burst ends (BullMQ's debounce with replace
// and extend). Only a backend that can change a waiting job in place,
// atomically with the workers' Reserve, implements it: a message broker
// cannot take back a message it has handed out.
//
// Fallback when absent: queue.EnqueueOptions.Debounce returns an error
// wrapping job.ErrUnsupported; use a unique key (one job per burst, with
// the first enqueue's arguments) instead.
type Debouncer interface {
	// Debounce enqueues p.Job as the key's job unless a job of its queue
	// enqueued with the same p.Key is still waiting (Pending or
	// Scheduled). Then that job takes p.Job's payload and headers, its run
	// time moves to now+p.Window but never past its CreatedAt+p.MaxWait,
	// and the result names it with Duplicate=true: nothing was inserted,
	// the waiting job was replaced. A job of the key that is running,
	// retrying or finished does not count: p.Job is inserted, due at
	// now+p.Window (or now+p.MaxWait if that is sooner), and becomes the
	// key's job. The check and the change are atomic with Reserve, so a
	// replaced job is never also running with its old payload.
	// p.Job.RunAt is ignored, its MaxDepth bounds an insert as in
	// Enqueue, and it has no UniqueKey (the debounce key is its key).
	Debounce(ctx context.Context, p DebounceParams) (EnqueueResult, error)
}

// DebounceParams is the input of Debouncer.Debounce.
type DebounceParams struct {
	Job *JobInsert // required
	// Key groups the enqueues that make one job, within Job.Queue.
	// Required.
	Key string
	// Window is how long after the last enqueue of a burst the job runs.
	// Required (positive).
	Window time.Duration
	// MaxWait caps how long a burst may push its job back, counted from
	// the job's first enqueue (its CreatedAt), so that a key enqueued
	// without pause still runs. Default 0: no cap.
	MaxWait time.Duration
}

// Validate checks a debounce request; the error wraps job.ErrInvalid.
func (p DebounceParams) Validate() error {
	if p.Job == nil {
		return fmt.Errorf("%w: debounce without a job", job.ErrInvalid)
	}
	if err := (EnqueueParams{Jobs: []*JobInsert{p.Job}}).Validate(); err != nil {
		return err
	}
	if p.Key == "" || p.Window <= 0 || p.MaxWait < 0 || p.Job.UniqueKey != "" || !p.Job.UniqueUntil.IsZero() {
		return fmt.Errorf("%w: debounce of job %s needs a key, a positive window, no negative max wait and no unique key", job.ErrInvalid, p.Job.ID)
	}
	return nil
}

// RunAt is when the key's job runs after an enqueue at now, for a job
// first enqueued at created: now+Window, capped at created+MaxWait.
func (p DebounceParams) RunAt(now, created time.Time) time.Time {
	at := now.Add(p.Window)
	if p.MaxWait > 0 {
		if limit := created.Add(p.MaxWait); limit.Before(at) {
			at = limit
		}
	}
	return at
}
