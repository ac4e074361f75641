package amqpbackend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.Admin = (*StoredBackend)(nil)

// ReplayJobs implements backends.Admin from the store: each dead or
// cancelled job gets a new message in its work queue with a fresh delivery
// count. Its old dead letter stays in the dead-letter queue, marked stale
// by the store, so replaying that too (ReplayDead) cannot run it twice.
func (b *StoredBackend) ReplayJobs(ctx context.Context, p backends.ReplayJobsParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	ids := p.IDs
	if len(ids) == 0 && p.Queue != "" {
		docs, err := b.scan(ctx)
		if err != nil {
			return 0, err
		}
		for _, d := range docs {
			if d.Queue == p.Queue && d.State == job.Dead {
				ids = append(ids, d.ID)
			}
		}
	}
	n := 0
	for _, id := range ids {
		now := b.cfg.Clock.Now()
		d, err := b.st.update(ctx, id, func(cur *doc) error {
			if cur.State != job.Dead && cur.State != job.Cancelled {
				return errStale
			}
			if pl, ok := p.Payloads[id]; ok {
				cur.Payload = pl
			}
			cur.State, cur.RunAt, cur.FinishedAt, cur.Deliveries, cur.CancelRequested, cur.RetriedFrom = job.Pending, now, time.Time{}, 0, false, 0
			cur.Incarnation++
			return nil
		})
		switch {
		case errors.Is(err, errStale), errors.Is(err, job.ErrNotFound):
			continue
		case err != nil:
			return n, err
		}
		if err := b.republish(ctx, d, now); err != nil {
			return n, fmt.Errorf("amqpbackend: replay %s: %w", id, err)
		}
		n++
	}
	return n, nil
}

// DeleteJobs implements backends.Admin. A deleted waiting job's message
// is dropped when it is delivered.
func (b *StoredBackend) DeleteJobs(ctx context.Context, p backends.DeleteJobsParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	var docs []*doc
	for _, id := range p.IDs {
		d, _, err := b.st.get(ctx, id)
		if errors.Is(err, job.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		docs = append(docs, d)
	}
	return b.deleteAll(ctx, docs)
}

// PurgeQueue implements backends.Admin.
func (b *StoredBackend) PurgeQueue(ctx context.Context, p backends.PurgeQueueParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	docs, err := b.scan(ctx)
	if err != nil {
		return 0, err
	}
	docs = slices.DeleteFunc(docs, func(d *doc) bool { return d.Queue != p.Queue || !slices.Contains(p.States, d.State) })
	return b.deleteAll(ctx, docs)
}

// deleteAll deletes the jobs that are not running and counts them.
func (b *StoredBackend) deleteAll(ctx context.Context, docs []*doc) (int, error) {
	n := 0
	for _, d := range docs {
		ok, err := b.delete(ctx, d)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// delete deletes a job that is not running, unless it changed since it
// was read, and gives back what an unfinished one held. It leaves a
// tombstone, so that the job's message, if one is left, is dropped.
func (b *StoredBackend) delete(ctx context.Context, d *doc) (bool, error) {
	if d.State == job.Running {
		return false, nil
	}
	err := b.st.remove(ctx, d)
	if errors.Is(err, job.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !d.State.Finished() {
		if err := b.st.release(ctx, d); err != nil {
			return true, err
		}
	}
	return true, nil
}
