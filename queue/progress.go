package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Notes returns what a long job's handler left with the job: its latest
// progress, checkpoint and kept log lines (worker.Progress,
// worker.Checkpoint, worker.Logger), and whether a handler ignored its
// cancellation. They are read from the backend's Annotator, else from the
// KVStore the worker falls back to; without either the error wraps
// job.ErrUnsupported. A job without notes has empty ones.
func (c *Client) Notes(ctx context.Context, id string) (job.Notes, error) {
	if a, ok := c.b.(backends.Annotator); ok {
		return a.Notes(ctx, backends.NotesParams{JobID: id})
	}
	if kv, ok := c.b.(backends.KVStore); ok {
		return backends.NotesKV(ctx, kv, id, time.Time{})
	}
	return job.Notes{}, fmt.Errorf("%w: job notes on %T", job.ErrUnsupported, c.b)
}

// Notes returns the job's notes, as Client.Notes.
func (h *Handle[R]) Notes(ctx context.Context) (job.Notes, error) { return h.c.Notes(ctx, h.ID) }

// Progress returns the job's latest progress report, nil before the
// first. A reader polling it sees each delivery's reports in order, at
// most one new one per worker.Config.ProgressEvery.
func (h *Handle[R]) Progress(ctx context.Context) (*job.Progress, error) {
	n, err := h.c.Notes(ctx, h.ID)
	if err != nil {
		return nil, err
	}
	return n.Progress, nil
}

// WaitProgress waits like Wait and calls onProgress with each new
// progress report it sees, looking every poll (default 1s, the worker's
// default write interval): a web handler streaming a job's progress to
// the browser, or a CLI drawing a bar. The last report a job made before
// it finished is always passed on before the result returns.
func (h *Handle[R]) WaitProgress(ctx context.Context, poll time.Duration, onProgress func(job.Progress)) (R, error) {
	var zero R
	if poll <= 0 {
		poll = time.Second
	}
	var last time.Time
	var lastFraction float64
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		r, err := h.c.Job(ctx, h.ID) // before the notes: a finished job's last report is already written
		if err != nil {
			return zero, err
		}
		n, err := h.c.Notes(ctx, h.ID)
		if err != nil {
			return zero, err
		}
		if p := n.Progress; p != nil && (!p.At.Equal(last) || p.Fraction != lastFraction) {
			last, lastFraction = p.At, p.Fraction
			onProgress(*p)
		}
		if r.State.Finished() {
			return h.result(r)
		}
		select {
		case <-ctx.Done():
			return zero, context.Cause(ctx)
		case <-tick.C:
		}
	}
}
