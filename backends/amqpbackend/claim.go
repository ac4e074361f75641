package amqpbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// errStale: the store says the delivered message is not the job's current
// one (it finished, was cancelled or deleted, or a retry superseded it).
var errStale = errors.New("amqpbackend: stale message")

// errUnrecorded: the store has no record of the delivered job yet, and the
// message is young enough that its enqueue may still be writing it.
var errUnrecorded = errors.New("amqpbackend: job not recorded yet")

// errHeld: the store says another delivery of the job holds it under a
// lease that has not expired. That holder finishes the job, or dies and
// its lease expires; running this copy too would be a second run at once
// and would take the job from a live holder.
var errHeld = errors.New("amqpbackend: job held by another delivery")

// errPoison: the store says the job was delivered MaxDeliveries times.
var errPoison = errors.New("amqpbackend: poison message")

// claim moves the delivered job to Running in the store, with lease jl,
// and returns the stored job. A message the store says is stale is
// refused with an error wrapping errStale, saying why. A message whose
// record the store does not have, and never deleted (no tombstone), is the
// store's loss, not the job's end: a store restarted without persistence,
// restored from an older backup or cleaned by hand, or a message another
// producer published. The message carries the whole job, so the record is
// restored from it and the job runs; a warning names it.
func (b *Backend) claim(ctx context.Context, it *item, n int, now time.Time, jl job.Lease) (*doc, error) {
	msg := it.doc
	start := func(d *doc) {
		d.State, d.Deliveries, d.StartedAt, d.Lease = job.Running, n, now, jl
	}
	// With a record, the store counts the deliveries: the ones that were
	// leased. The broker's count also takes in every return of a message
	// prefetched by a consumer that died before it started it, which would
	// make a job that waited behind many crashes a poison message without
	// having run; and two messages of one incarnation (a worker killed
	// between publishing a retry and recording it) would repeat a number.
	var poisoned *doc
	startAfter := func(cur *doc) error {
		k := cur.Deliveries + 1
		if msg.MaxDeliveries > 0 && k > msg.MaxDeliveries {
			dead := *cur
			poisoned = &dead
			return errPoison
		}
		start(cur)
		cur.Deliveries = k
		return nil
	}
	for {
		restored := false
		stored, err := b.st.update(ctx, msg.ID, func(cur *doc) error {
			switch {
			case cur.Incarnation > msg.Incarnation:
				return fmt.Errorf("%w: superseded by the job's message %d", errStale, cur.Incarnation)
			case cur.State.Finished() && cur.Incarnation == msg.Incarnation:
				return fmt.Errorf("%w: the job is %s", errStale, cur.State)
			case surplusRetry(cur, msg):
				return fmt.Errorf("%w: a retry of delivery %d, which another delivery of the job superseded", errStale, msg.RetriedFrom)
			case cur.State.Finished():
				// The message is newer than the record, which no process
				// writes in this order (a replay writes the store first):
				// the store went back in time.
				v := cur.version
				*cur = *msg
				cur.version, restored = v, true
				cur.Incarnation = msg.Incarnation
				start(cur) // counted from the message: the store's count went back with it
				return nil
			}
			if cur.State == job.Running && cur.Lease.ExpiresAt.After(now) {
				// A copy of the message the holder has: the broker requeued
				// the holder's delivery when its session was lost (the
				// holder still finishes the job through the store), or a
				// process froze mid-claim and claims late.
				return fmt.Errorf("%w: lease until %s", errHeld, cur.Lease.ExpiresAt.Format(time.RFC3339Nano))
			}
			if cur.Incarnation < msg.Incarnation { // a retry published but not recorded: the message is newer
				cur.Errors, cur.RunAt, cur.RetriedFrom = msg.Errors, msg.RunAt, msg.RetriedFrom
			}
			cur.Incarnation = msg.Incarnation
			return startAfter(cur)
		})
		if errors.Is(err, job.ErrNotFound) {
			stored, err = b.restore(ctx, msg, now, start)
			if errors.Is(err, job.ErrConflict) {
				continue // another consumer restored it meanwhile: claim that
			}
		} else if restored && err == nil {
			if stored.Bounded { // its finish gave its place back: it holds one again
				_ = b.st.addDepth(ctx, stored.Queue, 1, 0)
			}
			b.warnRestored(msg, "the record is older than the message")
		}
		if errors.Is(err, errPoison) {
			return poisoned, err
		}
		return stored, err
	}
}

// surplusRetry reports whether msg was published by the Retry of a
// delivery that another delivery of the job superseded before the Retry
// was recorded: a process froze between publishing and recording, its
// delivery went back to the broker and was taken again. The job is that
// later delivery's; running the message too would be a second run, and the
// two would share delivery numbers.
//
// Two cases: the retry is not recorded, and the store counted a delivery
// after the one that published it; or it is recorded, as the retry of
// another delivery than msg's.
func surplusRetry(cur, msg *doc) bool {
	switch {
	case msg.RetriedFrom == 0: // an enqueue or a replay
		return false
	case cur.Incarnation+1 == msg.Incarnation:
		return cur.Deliveries > msg.RetriedFrom
	case cur.Incarnation == msg.Incarnation:
		return cur.RetriedFrom != 0 && cur.RetriedFrom != msg.RetriedFrom
	}
	return false
}

// restore records a job the store does not have from its message, as
// started by start, unless it has a tombstone (it was deleted on purpose:
// errStale) or its enqueue may still record it (a first message younger
// than Config.RecordWait at now: errUnrecorded). The error wraps job.ErrConflict if another process recorded
// it first.
func (b *Backend) restore(ctx context.Context, msg *doc, now time.Time, start func(*doc)) (*doc, error) {
	gone, err := b.st.tombstoned(ctx, msg.ID)
	if err != nil {
		return nil, err
	}
	if gone {
		return nil, fmt.Errorf("%w: the job was deleted", errStale)
	}
	if msg.Incarnation == 0 && now.Sub(msg.CreatedAt) < b.cfg.RecordWait {
		return nil, errUnrecorded // its enqueue publishes first, then records
	}
	d := *msg
	if d.CreatedAt.IsZero() { // a message from another producer
		d.CreatedAt = b.cfg.Clock.Now()
	}
	start(&d)
	// The depth counter is left as it is: the lost record's place in it
	// was taken at its enqueue and never given back (it did not finish),
	// and the restored job gives it back when it finishes. Counting it
	// again put the bounded queue one over its bound (seen in the chaos
	// run); a store that lost its counter too is recounted by the janitor.
	if err := b.st.put(ctx, &d, 0); err != nil {
		return nil, fmt.Errorf("amqpbackend: restore job %s: %w", d.ID, err)
	}
	b.warnRestored(&d, "the store has no record of it")
	return &d, nil
}

func (b *Backend) warnRestored(d *doc, why string) {
	b.cfg.Logger.Warn("amqpbackend: store record missing; restored from the message",
		"queue", d.Queue, "job", d.ID, "task", d.Task, "state", d.State, "why", why)
}

// recordDead moves the job to Dead in the store, as dead has it, if the
// lease token (if given) is still the job's there. A job the store lost
// is recorded dead from its message, unless it was deleted (errStale).
func (b *Backend) recordDead(ctx context.Context, dead *doc, token string) error {
	for {
		_, err := b.st.update(ctx, dead.ID, func(cur *doc) error {
			if cur.State.Finished() || (token != "" && cur.Lease.Token != token) {
				return job.ErrLeaseLost
			}
			cur.Errors, cur.State, cur.FinishedAt, cur.Lease, cur.Deliveries = dead.Errors, job.Dead, dead.FinishedAt, job.Lease{}, dead.Deliveries
			return nil
		})
		if !errors.Is(err, job.ErrNotFound) {
			return err
		}
		_, err = b.restore(ctx, dead, time.Time{}, func(*doc) {})
		if !errors.Is(err, job.ErrConflict) {
			return err
		}
	}
}
