package worker

import (
	"context"
	"fmt"

	"github.com/conveyorhq/conveyor/backends"
)

// WorkDue runs every job that is due now in the worker's queues, one at a
// time in the caller's goroutine, and returns how many ran. It needs no
// Start. Tests use it to drain a queue deterministically, and a
// queue.Client with Config.Inline set to the worker calls it after each
// enqueue, which runs tasks at enqueue like Django's immediate backend.
func (w *Worker) WorkDue(ctx context.Context) (int, error) {
	n := 0
	for {
		ran := 0
		for _, q := range w.live().Queues {
			recs, heldBack, err := w.reserve(ctx, q, backends.ReserveParams{Queue: q.Name, Limit: 1, Lease: w.cfg.LeaseDuration, Worker: w.cfg.ID})
			if err != nil {
				return n, fmt.Errorf("queue %s: %w", q.Name, err)
			}
			for _, rec := range recs {
				jctx, cancel := context.WithCancelCause(ctx)
				w.execute(jctx, rec)
				cancel(nil)
				ran++
			}
			ran += heldBack // postponed, as a job admission holds back is
		}
		if ran == 0 {
			return n, nil
		}
		n += ran
	}
}
