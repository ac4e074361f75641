package worker

import (
	"context"
	"fmt"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// reserve leases jobs of q: round-robin across the queue's groups (the
// jobs' queue.EnqueueOptions.Key) when q is Fair, else in Reserve's order.
func (w *Worker) reserve(ctx context.Context, q QueueConfig, p backends.ReserveParams) ([]*job.Record, error) {
	if q.Fair {
		fr, ok := w.b.(backends.FairReserver)
		if !ok {
			return nil, fairUnsupported(w.b, q.Name)
		}
		p.Weights = q.FairWeights
		return fr.ReserveFair(ctx, p)
	}
	return w.b.Reserve(ctx, p)
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
