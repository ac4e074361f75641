package amqpbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// doc is a job as a message carries it (see wire.go) and as the store
// keeps it (JSON). In a message, Deliveries counts the deliveries of
// earlier messages of the same job (a retry or snooze publishes a new
// message, whose broker delivery count starts again at zero).
type doc struct {
	job.Record
	// Bounded: the job counts in its queue's depth counter in the store.
	Bounded bool `json:",omitempty"`
	// Incarnation grows with every message published for the job, so a
	// message superseded by a retry is told from the current one.
	Incarnation int `json:",omitempty"`

	version int64 // its version in the store, where it was read from there
}

func newDoc(ins *backends.JobInsert, now time.Time) *doc {
	d := &doc{Record: job.Record{
		ID: ins.ID, Queue: ins.Queue, Task: ins.Task, Payload: ins.Payload, Headers: ins.Headers,
		Priority: ins.Priority, RunAt: ins.RunAt, CreatedAt: now, MaxDeliveries: ins.MaxDeliveries,
		Timeout: ins.Timeout, RetryPolicy: ins.RetryPolicy, UniqueKey: ins.UniqueKey, UniqueUntil: ins.UniqueUntil,
	}, Bounded: ins.MaxDepth > 0}
	switch {
	case d.RunAt.IsZero():
		d.RunAt, d.State = now, job.Pending
	case d.RunAt.After(now):
		d.State = job.Scheduled
	default: // a past run-at is kept: it orders the job before later ones
		d.State = job.Pending
	}
	return d
}

// outgoing is one message to publish.
type outgoing struct {
	exchange, key string
	doc           *doc
	body          []byte // set instead of doc for a raw dead letter
	reason        string // dead letters: why, as a header
	work          bool   // straight into the work queue doc.Queue: Reserve waits for it
}

// route returns the message that puts d where it waits until d.RunAt: its
// work queue if due within holdLate (a consumer holds it until due), else
// the delay level that fits the time left.
func (b *Backend) route(ctx context.Context, d *doc, now time.Time) (outgoing, error) {
	left := d.RunAt.Sub(now)
	if left <= holdLate {
		return outgoing{exchange: b.names.workExchange(), key: d.Queue, doc: d, work: true}, nil
	}
	level := delayLevel(left)
	if err := b.ensureLevel(ctx, level); err != nil {
		return outgoing{}, err
	}
	return outgoing{exchange: b.names.delay(level), key: d.Queue, doc: d}, nil
}

// send publishes d to where it waits until d.RunAt (see route) and waits
// for the broker's confirm.
func (b *Backend) send(ctx context.Context, d *doc, now time.Time) error {
	m, err := b.route(ctx, d, now)
	if err != nil {
		return err
	}
	return b.publishAll(ctx, m)
}

// deadLetter returns the message that puts d (or a raw body, if d is nil)
// in queue q's dead-letter queue.
func (b *Backend) deadLetter(ctx context.Context, q string, d *doc, body []byte, reason string) (outgoing, error) {
	if err := b.ensureDead(ctx, q); err != nil {
		return outgoing{}, err
	}
	return outgoing{exchange: b.names.deadExchange(), key: q, doc: d, body: body, reason: reason}, nil
}

// errUnconfirmed: the broker nacked a publish (its queue is full).
var errUnconfirmed = errors.New("amqpbackend: publish refused by the broker")

// publish sends msgs on the confirming channel and waits for every
// confirm. The result says, per message, whether the broker took it. A
// connection lost before every confirm came is an error: the caller cannot
// know which of the unconfirmed ones arrived.
func (b *Backend) publish(ctx context.Context, msgs ...outgoing) ([]bool, error) {
	s, err := b.session(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for _, m := range msgs {
		if m.work {
			b.transit.add(m.doc.Queue, m.doc.ID, now)
		}
	}
	// Whatever was not confirmed will not arrive.
	confirmed := 0
	defer func() {
		for _, m := range msgs[confirmed:] {
			if m.work {
				b.transit.arrived(m.doc.Queue, m.doc.ID)
			}
		}
	}()
	confs := make([]*amqp.DeferredConfirmation, len(msgs))
	for i, m := range msgs {
		pub := amqp.Publishing{DeliveryMode: amqp.Persistent, Body: m.body}
		if m.doc != nil {
			if pub, err = encode(m.doc); err != nil {
				return nil, err
			}
		}
		if m.reason != "" {
			if pub.Headers == nil {
				pub.Headers = amqp.Table{}
			}
			pub.Headers[reasonHeader] = m.reason
		}
		confs[i], err = s.pub.PublishWithDeferredConfirmWithContext(ctx, m.exchange, m.key, false, false, pub)
		if err != nil {
			return nil, fmt.Errorf("amqpbackend: publish: %w", err)
		}
	}
	acked := make([]bool, len(msgs))
	for i, dc := range confs {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("amqpbackend: waiting for the broker's confirm: %w", err)
		}
		if !ok && s.pub.IsClosed() {
			return nil, fmt.Errorf("%w: connection lost before the broker confirmed", errBrokerUnavailable)
		}
		acked[i] = ok
		if !ok && msgs[i].work {
			b.transit.arrived(msgs[i].doc.Queue, msgs[i].doc.ID)
		}
		confirmed++
	}
	return acked, nil
}

// publishAll publishes msgs and fails unless the broker took every one.
func (b *Backend) publishAll(ctx context.Context, msgs ...outgoing) error {
	acked, err := b.publish(ctx, msgs...)
	if err != nil {
		return err
	}
	for i, ok := range acked {
		if !ok {
			return fmt.Errorf("%w: %s to %s", errUnconfirmed, msgs[i].key, msgs[i].exchange)
		}
	}
	return nil
}
