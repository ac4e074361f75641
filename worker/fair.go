package worker

import (
	"context"
	"fmt"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// reserve leases jobs of q: round-robin across the queue's groups (the
// jobs' queue.EnqueueOptions.Key) when q is Fair, else in Reserve's order,
// with the concurrency limits per job key held by the reserve itself on a
// backends.SlotReserver (limits.go); heldBack counts the jobs those
// postponed instead.
func (w *Worker) reserve(ctx context.Context, q QueueConfig, p backends.ReserveParams) (recs []*job.Record, heldBack int, err error) {
	reserve := w.b.Reserve
	if q.Fair {
		fr, ok := w.b.(backends.FairReserver)
		if !ok {
			return nil, 0, fairUnsupported(w.b, q.Name)
		}
		p.Weights, reserve = q.FairWeights, fr.ReserveFair
	}
	if recs, heldBack, ok, err := w.reserveSlots(ctx, p, q.Fair); ok {
		return recs, heldBack, err
	}
	recs, err = reserve(ctx, p)
	return recs, 0, err
}

// checkFair refuses fair queues on a backend that cannot serve them
// fairly: a fair queue served in Reserve's order would let one tenant's
// backlog delay every other, silently.
func checkFair(b backends.Backend, qs []QueueConfig) error {
	if _, ok := b.(backends.FairReserver); ok {
		return nil
	}
	for _, q := range qs {
		if q.Fair {
			return fairUnsupported(b, q.Name)
		}
	}
	return nil
}

func fairUnsupported(b backends.Backend, queue string) error {
	return fmt.Errorf("worker: fair queue %s: %w: %T is not a backends.FairReserver", queue, job.ErrUnsupported, b)
}
