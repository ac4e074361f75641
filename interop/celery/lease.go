package celery

import (
	"container/heap"
	"context"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Reserve leases up to p.Limit due messages of the queue. The first
// Reserve of a queue starts its consumer. A message whose Celery expires
// has passed is revoked (REVOKED in the result backend) and acked, never
// returned; one delivered MaxDeliveries times is dead-lettered as poison.
func (b *Broker) Reserve(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	if p.Queue == "" || p.Limit < 1 {
		return nil, fmt.Errorf("%w: reserve needs a queue and a limit of at least 1", job.ErrInvalid)
	}
	if err := b.ensureConsumer(p.Queue); err != nil {
		return nil, err
	}
	var out []*job.Record
	var poison, expired []*item
	waited := false
	b.mu.Lock()
	l := b.local(p.Queue)
	for {
		now := b.cfg.Clock.Now()
		b.recoverExpired(l, now)
		l.promote(now)
		// This process published to the queue a moment ago: wait for those
		// messages (an Enqueue followed by a Reserve must see its job, in
		// priority order with the rest) before taking any, unless the
		// prefetch is full and they cannot arrive.
		transit := !waited && l.ready.Len() < b.cfg.Prefetch && l.inTransit(now, b.cfg.TransitWait)
		for !transit && len(out) < p.Limit && l.ready.Len() > 0 {
			it := heap.Pop(l.ready).(*item)
			r := it.d.rec
			switch {
			case r.MaxDeliveries > 0 && r.Deliveries >= r.MaxDeliveries:
				poison = append(poison, it)
			case !it.d.expires.IsZero() && now.After(it.d.expires):
				expired = append(expired, it)
			default:
				out = append(out, b.lease(it, now, p))
			}
		}
		if !transit {
			break
		}
		arrived := l.arrived
		b.mu.Unlock()
		timer := time.NewTimer(b.cfg.TransitWait)
		select {
		case <-arrived:
		case <-timer.C:
			waited = true
		case <-ctx.Done():
			timer.Stop()
			b.mu.Lock()
			b.unlease(out)
			b.mu.Unlock()
			return nil, ctx.Err()
		}
		timer.Stop()
		b.mu.Lock()
	}
	b.t.held(p.Queue, l.later.Len())
	l.wakeConsumer()
	b.mu.Unlock()
	for _, it := range poison {
		reason := fmt.Sprintf("poison message: delivered %d times (max %d)", it.d.rec.Deliveries, it.d.rec.MaxDeliveries)
		if err := b.deadLetter(ctx, it, job.AttemptError{Attempt: it.d.rec.Attempts() + 1, At: b.cfg.Clock.Now(), Error: reason}); err != nil {
			return out, err
		}
	}
	for _, it := range expired {
		if err := b.finish(ctx, it, StateRevoked, failure("TaskRevokedError", "celery.exceptions", "expired")); err != nil {
			return out, err
		}
	}
	return out, nil
}

// lease hands an item to a caller; b.mu is held.
func (b *Broker) lease(it *item, now time.Time, p backends.ReserveParams) *job.Record {
	r := it.d.rec
	r.Deliveries++
	r.StartedAt = now
	r.State = job.Running
	it.lease = job.Lease{JobID: r.ID, Token: token(), ExpiresAt: now.Add(p.Lease)}
	r.Lease = it.lease
	it.cancel = false
	b.leases[it.lease.Token] = it
	b.running[r.ID] = it
	c := *r
	c.Errors = append([]job.AttemptError(nil), r.Errors...)
	return &c
}

// unlease gives back records leased by a Reserve that then failed.
func (b *Broker) unlease(recs []*job.Record) {
	for _, r := range recs {
		if it := b.leases[r.Lease.Token]; it != nil {
			b.drop(it)
			it.d.rec.Deliveries--
			heap.Push(b.local(it.queue).ready, it)
		}
	}
}

// recoverExpired makes the queue's jobs whose lease expired due again,
// with that delivery counted; b.mu is held. The message stays
// unacknowledged: the broker does not know a lease ran out.
func (b *Broker) recoverExpired(l *local, now time.Time) {
	for _, it := range b.leases {
		if l != b.queues[it.queue] || it.settling || it.lease.ExpiresAt.After(now) {
			continue
		}
		b.drop(it)
		heap.Push(l.ready, it)
	}
}

func (b *Broker) drop(it *item) {
	delete(b.leases, it.lease.Token)
	if b.running[it.d.rec.ID] == it {
		delete(b.running, it.d.rec.ID)
	}
}

// claim finds the live lease and marks it being settled, so no other call
// and no expiry takes it meanwhile.
func (b *Broker) claim(l job.Lease) (*item, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	it := b.leases[l.Token]
	if it == nil || it.settling || it.d.rec.ID != l.JobID || !it.lease.ExpiresAt.After(b.cfg.Clock.Now()) {
		return nil, fmt.Errorf("job %s: %w", l.JobID, job.ErrLeaseLost)
	}
	it.settling = true
	return it, nil
}

// settled ends a claim: on success the job leaves this process.
func (b *Broker) settled(it *item, err error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	it.settling = false
	if err != nil {
		return err
	}
	b.drop(it)
	b.notify(backends.Event{Kind: backends.JobFinished, Queue: it.queue, JobID: it.d.rec.ID})
	b.local(it.queue).wakeConsumer()
	return nil
}

// Extend pushes each live lease to now+p.Lease.
func (b *Broker) Extend(ctx context.Context, p backends.ExtendParams) ([]backends.ExtendResult, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.cfg.Clock.Now()
	out := make([]backends.ExtendResult, len(p.Leases))
	for i, l := range p.Leases {
		out[i].JobID = l.JobID
		it := b.leases[l.Token]
		if it == nil || it.d.rec.ID != l.JobID || !it.lease.ExpiresAt.After(now) {
			out[i].Lost = true
			continue
		}
		it.lease.ExpiresAt = now.Add(p.Lease)
		out[i].ExpiresAt, out[i].CancelRequested = it.lease.ExpiresAt, it.cancel
	}
	return out, nil
}

// Complete stores SUCCESS with the result, then acks the message.
func (b *Broker) Complete(ctx context.Context, p backends.CompleteParams) error {
	return b.withLease(ctx, p.Lease, func(it *item) error {
		return b.finish(ctx, it, StateSuccess, resultValue(p.Result))
	})
}

// withLease runs fn on the job p's lease holds, which leaves this process
// if fn succeeds.
func (b *Broker) withLease(ctx context.Context, l job.Lease, fn func(*item) error) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	it, err := b.claim(l)
	if err != nil {
		return err
	}
	return b.settled(it, fn(it))
}

// finish stores a final state, then acks the message.
func (b *Broker) finish(ctx context.Context, it *item, status string, result []byte) error {
	if err := b.publishResult(ctx, it.d, status, result, ""); err != nil {
		return err
	}
	return b.t.settle(ctx, it.r, nil, dest{})
}

// Retry republishes the message with eta p.At, as Celery's own retry does:
// after a failed attempt with retries+1, RETRY stored with the error; for
// a snooze as it was, its delivery given back. Then it acks the old one.
func (b *Broker) Retry(ctx context.Context, p backends.RetryParams) error {
	return b.withLease(ctx, p.Lease, func(it *item) error {
		deliveries := it.d.rec.Deliveries
		if p.Error == nil {
			deliveries--
		} else if err := b.publishResult(ctx, it.d, StateRetry, failure(ErrorType, "", p.Error.Error), traceback(*p.Error)); err != nil {
			return err
		}
		next := again(it.d, p.At, deliveries, p.Error)
		tag := token()
		next.Headers[hTransit] = tag
		b.mu.Lock()
		b.local(it.queue).transit[tag] = b.cfg.Clock.Now()
		b.mu.Unlock()
		return b.t.settle(ctx, it.r, next, dest{queue: it.queue})
	})
}

// DeadLetter stores FAILURE with the error, so the Python side's get
// raises it, moves the message to the dead-letter queue with the reason,
// and acks it.
func (b *Broker) DeadLetter(ctx context.Context, p backends.DeadLetterParams) error {
	return b.withLease(ctx, p.Lease, func(it *item) error { return b.deadLetter(ctx, it, p.Error) })
}

func (b *Broker) deadLetter(ctx context.Context, it *item, e job.AttemptError) error {
	if err := b.publishResult(ctx, it.d, StateFailure, failure(ErrorType, "", e.Error), traceback(e)); err != nil {
		return err
	}
	dead := again(it.d, it.d.rec.RunAt, it.d.rec.Deliveries, &e)
	dead.Headers[ReasonHeader] = e.Error
	return b.t.settle(ctx, it.r, dead, dest{queue: b.cfg.DeadQueue(it.queue), dead: true})
}

func traceback(e job.AttemptError) string {
	if e.Stack != "" {
		return e.Error + "\n" + e.Stack
	}
	return e.Error
}

// Cancel revokes a job this process holds: a waiting one at once (REVOKED
// stored, message acked), a running one by asking its worker to stop, and
// with the lease by finishing it as REVOKED. A job this process does not
// hold cannot be found on a Celery broker: job.ErrUnsupported (Celery's
// revoke is a broadcast to its workers, which Conveyor does not send).
func (b *Broker) Cancel(ctx context.Context, p backends.CancelParams) (job.State, error) {
	if err := b.usable(ctx); err != nil {
		return "", err
	}
	rev := failure("TaskRevokedError", "celery.exceptions", "cancelled")
	if p.Lease != nil {
		if err := b.withLease(ctx, *p.Lease, func(it *item) error { return b.finish(ctx, it, StateRevoked, rev) }); err != nil {
			return "", err
		}
		return job.Cancelled, nil
	}
	b.mu.Lock()
	if it := b.running[p.JobID]; it != nil {
		it.cancel = true
		b.mu.Unlock()
		return job.Running, nil
	}
	it := b.takeWaiting(p.JobID)
	b.mu.Unlock()
	if it == nil {
		return "", fmt.Errorf("%w: job %s is not held by this process, and a Celery broker cannot find a job by ID", job.ErrUnsupported, p.JobID)
	}
	if err := b.finish(ctx, it, StateRevoked, rev); err != nil {
		return "", err
	}
	return job.Cancelled, nil
}

// takeWaiting removes a waiting job from its heaps; b.mu is held.
func (b *Broker) takeWaiting(id string) *item {
	for _, l := range b.queues {
		for _, it := range l.ready.items {
			if it.d.rec.ID == id {
				return heap.Remove(l.ready, it.idx).(*item)
			}
		}
		for _, it := range l.later.items {
			if it.d.rec.ID == id {
				return heap.Remove(l.later, it.idx).(*item)
			}
		}
	}
	return nil
}
