package amqpbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// Reserve implements backends.Backend from this process's consumer of the
// queue: the deliveries that arrived, in priority, run-at and arrival
// order, or basic.get when the prefetch is all in use.
func (b *Backend) Reserve(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return nil, err
	}
	if paused, err := b.paused(ctx, p.Queue); paused || err != nil {
		return []*job.Record{}, err
	}
	c, err := b.consumer(ctx, p.Queue)
	if err != nil || c == nil {
		return []*job.Record{}, err
	}
	c.awaitTransit(ctx)
	out := []*job.Record{}
	var firstErr error
	lease := func(it *item) {
		rec, err := b.lease(ctx, c, it, p.Lease)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if rec != nil {
			out = append(out, rec)
		}
	}
	for len(out) < p.Limit && firstErr == nil {
		items := c.take(p.Limit - len(out))
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			lease(it)
		}
	}
	for len(out) < p.Limit && firstErr == nil && c.credit() <= 0 {
		ok, err := c.pull()
		if err != nil {
			firstErr = err
		}
		if !ok {
			break
		}
		for _, it := range c.take(p.Limit - len(out)) {
			lease(it)
		}
	}
	if len(out) == 0 && firstErr != nil {
		return nil, firstErr
	}
	return out, nil // jobs already leased are handed out even if a later one failed
}

// lease turns a delivery into a running job with a fresh lease. It returns
// nil for a delivery it settled instead: a poison message, or one the
// store says is stale (logged at Debug). A failure requeues the delivery.
func (b *Backend) lease(ctx context.Context, c *consumer, it *item, d time.Duration) (*job.Record, error) {
	now := b.cfg.Clock.Now()
	n := it.doc.Deliveries + deliveryCount(it.d) + 1
	l := &lease{c: c, d: it.d, gen: it.gen, expires: now.Add(d)}
	// poison buries dead, a job delivered its MaxDeliveries times.
	poison := func(dead doc) (*job.Record, error) {
		l.doc = &dead
		ae := job.AttemptError{Attempt: dead.Attempts() + 1, At: now, Error: backends.PoisonReason(dead.Deliveries)}
		err := b.bury(ctx, l, "", ae)
		switch {
		case errors.Is(err, errStale), errors.Is(err, job.ErrLeaseLost):
			b.cfg.Logger.Debug("amqpbackend: message dropped", "queue", it.doc.Queue, "job", it.doc.ID, "why", err)
			b.settle(l, true)
		case err != nil:
			b.settle(l, false)
			return nil, err
		}
		return nil, nil
	}
	if b.st == nil && it.doc.MaxDeliveries > 0 && n > it.doc.MaxDeliveries { // with a store, claim counts
		dead := *it.doc
		dead.Deliveries = n - 1
		return poison(dead)
	}
	jl := job.Lease{JobID: it.doc.ID, Token: record.Token(16), ExpiresAt: l.expires}
	rec := it.doc.Record
	if b.st != nil {
		recorded := b.recording.watch(it.doc.ID) // before claim reads: no write missed
		stored, err := b.claim(ctx, it, n, now, jl)
		switch {
		case errors.Is(err, errPoison):
			return poison(*stored)
		case errors.Is(err, errStale):
			b.cfg.Logger.Debug("amqpbackend: message dropped", "queue", it.doc.Queue, "job", it.doc.ID, "why", err)
			b.settle(l, true)
			return nil, nil
		case errors.Is(err, errUnrecorded) && recorded != nil: // this process is writing it
			go func() { <-recorded; c.refile(it) }()
			return nil, nil
		case errors.Is(err, errUnrecorded):
			c.putBack(it, recordPoll)
			return nil, nil
		case errors.Is(err, errHeld):
			b.cfg.Logger.Debug("amqpbackend: message held back", "queue", it.doc.Queue, "job", it.doc.ID, "why", err)
			c.putBack(it, heldPoll)
			return nil, nil
		case err != nil:
			b.settle(l, false)
			return nil, err
		}
		rec = stored.Record
		n = rec.Deliveries // the store's count, which may be ahead of the message's
	}
	rec.State, rec.Deliveries, rec.StartedAt, rec.Lease = job.Running, n, now, jl
	l.doc = &doc{Record: rec, Bounded: it.doc.Bounded, Incarnation: it.doc.Incarnation}
	b.addLease(jl.Token, l)
	out := rec
	return &out, nil
}

// Extend implements backends.Backend. Leases are this process's: one it
// does not hold (expired and returned, or held by another process) is lost.
func (b *Backend) Extend(ctx context.Context, p backends.ExtendParams) ([]backends.ExtendResult, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	now := b.cfg.Clock.Now()
	res := make([]backends.ExtendResult, len(p.Leases))
	b.leaseMu.Lock()
	for i, jl := range p.Leases {
		res[i] = backends.ExtendResult{JobID: jl.JobID, Lost: true}
		if l := b.leases[jl.Token]; l != nil && l.doc.ID == jl.JobID {
			l.expires = now.Add(p.Lease)
			res[i] = backends.ExtendResult{JobID: jl.JobID, ExpiresAt: l.expires}
		}
	}
	b.leaseMu.Unlock()
	if b.st == nil {
		return res, nil
	}
	// The store's lease is the one other processes go by (claim holds
	// back a copy of the message while it has not expired), so it is
	// extended there too.
	for i, jl := range p.Leases {
		if res[i].Lost {
			continue
		}
		d, err := b.st.update(ctx, jl.JobID, func(cur *doc) error {
			if cur.State != job.Running || cur.Lease.Token != jl.Token {
				return job.ErrLeaseLost
			}
			cur.Lease.ExpiresAt = res[i].ExpiresAt
			return nil
		})
		switch {
		case errors.Is(err, job.ErrLeaseLost):
			res[i].Lost = true
		case err != nil:
			return nil, err
		default:
			res[i].CancelRequested = d.CancelRequested
		}
	}
	return res, nil
}

// finish moves the leased job to its final state: in the store first
// (checking the lease there too), then by acking the delivery. With a store
// the job is finished once the store says so: a delivery that cannot be
// acked any more comes back and is dropped as stale.
func (b *Backend) finish(ctx context.Context, jl job.Lease, fn func(*doc)) (*doc, error) {
	l, err := b.claimLease(jl)
	if err != nil {
		return nil, fmt.Errorf("amqpbackend: job %s: %w", jl.JobID, err)
	}
	d := l.doc
	if b.st != nil {
		d, err = b.st.update(ctx, jl.JobID, func(cur *doc) error {
			if cur.State != job.Running || cur.Lease.Token != jl.Token {
				return job.ErrLeaseLost
			}
			fn(cur)
			return nil
		})
		if errors.Is(err, job.ErrLeaseLost) {
			b.settleLost(ctx, l, d)
			return nil, fmt.Errorf("amqpbackend: job %s: %w", jl.JobID, err)
		}
		if err != nil {
			b.addLease(jl.Token, l)
			return nil, err
		}
	} else {
		fn(d)
	}
	if !b.settle(l, true) && b.st == nil {
		return nil, fmt.Errorf("amqpbackend: job %s: connection lost before the ack: %w", jl.JobID, job.ErrLeaseLost)
	}
	b.finished(ctx, d)
	return d, nil
}

// settleLost settles a delivery whose lease the store no longer names,
// given the job as stored (nil: read it here, and if that fails, treat
// it as running). The delivery is acked when its message is redundant:
// the job finished, or waits on a newer message. While the job is
// running under another lease it goes back to the broker instead: this
// delivery may be the job's only message (its holder's copy may be gone
// with that holder's session), and acked it would leave the job running
// with nothing to run it again if the holder died. Handed back, it waits
// (claim: errHeld) until the holder finishes, and is then dropped as
// stale, or until the holder's lease expires, and then runs the job.
func (b *Backend) settleLost(ctx context.Context, l *lease, cur *doc) {
	if cur == nil {
		if d, _, err := b.st.get(ctx, l.doc.ID); err == nil {
			cur = d
		}
	}
	b.settle(l, cur != nil && cur.State != job.Running)
}

// finished gives back what the finished job d held in the store (its
// unique key, its depth slot) and announces it to this process.
func (b *Backend) finished(ctx context.Context, d *doc) {
	if b.st != nil {
		if err := b.st.release(context.WithoutCancel(ctx), d); err != nil {
			b.cfg.Logger.Warn("amqpbackend: job finished but its unique key or depth slot was not released", "job", d.ID, "state", d.State, "err", err)
		}
	}
	b.hub.Publish(backends.Event{Kind: backends.JobFinished, Queue: d.Queue, JobID: d.ID})
}

// Complete implements backends.Backend.
func (b *Backend) Complete(ctx context.Context, p backends.CompleteParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	_, err := b.finish(ctx, p.Lease, func(d *doc) {
		d.State, d.Result, d.FinishedAt, d.Lease = job.Done, p.Result, b.cfg.Clock.Now(), job.Lease{}
	})
	return err
}

// Retry implements backends.Backend: it publishes the job's next message
// (to its delay level, or to the work queue if p.At has passed), then acks
// the current delivery.
func (b *Backend) Retry(ctx context.Context, p backends.RetryParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	l, err := b.claimLease(p.Lease)
	if err != nil {
		return fmt.Errorf("amqpbackend: job %s: %w", p.Lease.JobID, err)
	}
	now := b.cfg.Clock.Now()
	next := *l.doc
	next.Lease, next.RunAt, next.RetriedFrom = job.Lease{}, p.At, l.doc.Deliveries
	next.Incarnation++
	switch {
	case p.Error != nil:
		next.Errors = append(append([]job.AttemptError(nil), next.Errors...), *p.Error)
		next.State = job.Retrying
	default: // a snooze gives its delivery back
		next.Deliveries--
		next.State = job.Scheduled
	}
	if !p.At.After(now) {
		next.State = job.Pending
	}
	if b.st != nil {
		// Check the lease in the store before publishing a second message.
		cur, _, err := b.st.get(ctx, next.ID)
		if err == nil && (cur.State != job.Running || cur.Lease.Token != p.Lease.Token) {
			b.settleLost(ctx, l, cur)
			return fmt.Errorf("amqpbackend: job %s: %w", next.ID, job.ErrLeaseLost)
		}
		if err != nil {
			b.addLease(p.Lease.Token, l)
			return err
		}
	}
	if err := b.send(ctx, &next, now); err != nil {
		b.addLease(p.Lease.Token, l)
		return err
	}
	if b.st != nil {
		cur, err := b.st.update(ctx, next.ID, func(cur *doc) error {
			switch {
			case cur.Incarnation >= next.Incarnation: // the new message was reserved already
				return errStale
			case cur.State != job.Running || cur.Lease.Token != p.Lease.Token:
				// Another delivery took the job since the check above (this
				// process froze in between, its delivery went back): that
				// one owns the job, and claim drops the message just sent.
				return job.ErrLeaseLost
			}
			cur.State, cur.RunAt, cur.Errors, cur.Deliveries, cur.Incarnation, cur.RetriedFrom, cur.Lease =
				next.State, next.RunAt, next.Errors, next.Deliveries, next.Incarnation, next.RetriedFrom, job.Lease{}
			return nil
		})
		switch {
		case errors.Is(err, job.ErrLeaseLost):
			b.settleLost(ctx, l, cur)
			return fmt.Errorf("amqpbackend: job %s: %w", next.ID, err)
		case err != nil && !errors.Is(err, errStale):
			b.cfg.Logger.Warn("amqpbackend: retry published but not recorded in the store", "job", next.ID, "err", err)
		}
	}
	b.settle(l, true)
	if next.State == job.Pending {
		b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: next.Queue})
	}
	return nil
}

// DeadLetter implements backends.Backend.
func (b *Backend) DeadLetter(ctx context.Context, p backends.DeadLetterParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	l, err := b.claimLease(p.Lease)
	if err != nil {
		return fmt.Errorf("amqpbackend: job %s: %w", p.Lease.JobID, err)
	}
	if err := b.bury(ctx, l, p.Lease.Token, p.Error); err != nil {
		switch {
		case errors.Is(err, job.ErrLeaseLost) && b.st != nil:
			b.settleLost(ctx, l, nil)
		case errors.Is(err, job.ErrLeaseLost) || errors.Is(err, errStale):
			b.settle(l, true)
		default:
			b.addLease(p.Lease.Token, l)
		}
		return err
	}
	return nil
}

// bury records the job dead (checking token in the store, if given),
// publishes it to the dead-letter queue and acks its delivery. An error
// wrapping job.ErrLeaseLost or errStale means the store says the job is
// not this delivery's to bury: the caller acks it without a dead letter.
func (b *Backend) bury(ctx context.Context, l *lease, token string, ae job.AttemptError) error {
	now := b.cfg.Clock.Now()
	dead := *l.doc
	dead.Errors = append(append([]job.AttemptError(nil), dead.Errors...), ae)
	dead.State, dead.FinishedAt, dead.Lease = job.Dead, now, job.Lease{}
	if b.st != nil {
		if err := b.recordDead(ctx, &dead, token); err != nil {
			return fmt.Errorf("amqpbackend: job %s: %w", dead.ID, err)
		}
	}
	m, err := b.deadLetter(ctx, dead.Queue, &dead, &l.d, ae.Error)
	if err == nil {
		err = b.publishAll(ctx, m)
	}
	if err != nil {
		return err
	}
	b.settle(l, true)
	b.finished(ctx, &dead)
	return nil
}

// Cancel implements backends.Backend. Without a store only the worker
// holding the lease can cancel (the broker cannot find a message by ID).
func (b *Backend) Cancel(ctx context.Context, p backends.CancelParams) (job.State, error) {
	if err := b.gate.Check(ctx); err != nil {
		return "", err
	}
	if p.Lease != nil {
		_, err := b.finish(ctx, *p.Lease, func(d *doc) {
			d.State, d.FinishedAt, d.Lease = job.Cancelled, b.cfg.Clock.Now(), job.Lease{}
		})
		if errors.Is(err, job.ErrLeaseLost) && b.st != nil {
			if d, _, gerr := b.st.get(ctx, p.JobID); gerr == nil && d.State.Finished() {
				return d.State, fmt.Errorf("amqpbackend: job %s is %s: %w", p.JobID, d.State, job.ErrFinished)
			}
		}
		if err != nil {
			return "", err
		}
		return job.Cancelled, nil
	}
	if b.st == nil {
		return "", fmt.Errorf("%w: cancel by ID needs a job-state store (amqpbackend Config.Store)", job.ErrUnsupported)
	}
	d, err := b.st.update(ctx, p.JobID, func(cur *doc) error {
		switch {
		case cur.State.Finished():
			return fmt.Errorf("amqpbackend: job %s is %s: %w", cur.ID, cur.State, job.ErrFinished)
		case cur.State == job.Running:
			cur.CancelRequested = true
		default: // its message is dropped when it is delivered
			cur.State, cur.FinishedAt = job.Cancelled, b.cfg.Clock.Now()
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if d.State == job.Cancelled {
		b.finished(ctx, d)
	}
	return d.State, nil
}

// hop sends a delivery that is not due yet back to the delay level that
// fits the time it has left, then acks it.
func (b *Backend) hop(d amqp.Delivery, dc *doc) {
	if err := b.send(b.ctx, dc, b.cfg.Clock.Now()); err != nil {
		b.cfg.Logger.Warn("amqpbackend: could not delay a job; the broker will deliver it again", "job", dc.ID, "err", err)
		_ = d.Nack(false, true)
		return
	}
	_ = d.Ack(false)
}

// rejectMalformed moves a message that is no job to the queue's
// dead-letter queue as it is (properties, headers and body), with the
// reason in a header, and acks it, so that it neither stops the consumer
// nor is lost.
func (b *Backend) rejectMalformed(d amqp.Delivery, q string, why error) {
	b.cfg.Logger.Warn("amqpbackend: malformed message moved to dead letter", "queue", q, "message_id", d.MessageId, "err", why)
	m, err := b.deadLetter(b.ctx, q, nil, &d, why.Error())
	if err == nil {
		err = b.publishAll(b.ctx, m)
	}
	if err != nil {
		_ = d.Nack(false, true)
		return
	}
	_ = d.Ack(false)
}

// spawn runs fn in the background until Close.
func (b *Backend) spawn(fn func()) {
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		fn()
	}()
}
