package amqpbackend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
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
	// RetriedFrom is the delivery (its number in the store's count) whose
	// Retry published this incarnation's message; zero for an enqueue or a
	// replay. It tells the retry of the job's current delivery from one a
	// superseded delivery published (see claim).
	RetriedFrom int `json:",omitempty"`

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
	orig          *amqp.Delivery // dead letters: the message that died, whose properties and headers it keeps
	reason        string         // dead letters: why, as a header
	work          bool           // straight into the work queue doc.Queue: Reserve waits for it
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

// deadLetter returns the message that puts d in queue q's dead-letter
// queue, keeping the properties and headers of orig, the message that
// died (if not nil); without d, orig goes as it is.
func (b *Backend) deadLetter(ctx context.Context, q string, d *doc, orig *amqp.Delivery, reason string) (outgoing, error) {
	if err := b.ensureDead(ctx, q); err != nil {
		return outgoing{}, err
	}
	return outgoing{exchange: b.names.deadExchange(), key: q, doc: d, orig: orig, reason: reason}, nil
}

// message returns what m publishes: the job it carries, over the
// properties and headers of the message it stands for, if any.
func (m outgoing) message(now time.Time) (amqp.Publishing, error) {
	pub := amqp.Publishing{DeliveryMode: amqp.Persistent}
	if m.orig != nil {
		pub = kept(m.orig)
	}
	if m.doc != nil {
		enc, err := encode(m.doc)
		if err != nil {
			return pub, err
		}
		if m.orig == nil {
			pub = enc
		} else {
			pub.MessageId, pub.Type, pub.Body = enc.MessageId, enc.Type, enc.Body
			maps.DeleteFunc(pub.Headers, func(k string, _ any) bool { return strings.HasPrefix(k, "x-conveyor-") })
			maps.Copy(pub.Headers, enc.Headers)
		}
	}
	if m.reason != "" {
		if pub.Headers == nil {
			pub.Headers = amqp.Table{}
		}
		pub.Headers[reasonHeader] = m.reason
		pub.Headers[hDeadAt] = now.UnixNano()
	}
	return pub, nil
}

// kept returns a delivery's properties, headers and body to publish again
// as its dead letter, so an operator can still correlate it (message-id,
// correlation-id, headers) and replay it by ID. Not kept: the expiration,
// which would let the dead letter expire, and the user-id, which the
// broker checks against the publishing user (it moves to a header); nor
// the broker's x-delivery-count. A dead letter is persistent.
func kept(d *amqp.Delivery) amqp.Publishing {
	h := amqp.Table{}
	maps.Copy(h, d.Headers)
	delete(h, "x-delivery-count")
	if d.UserId != "" {
		h[hUserID] = d.UserId
	}
	return amqp.Publishing{
		Headers: h, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: amqp.Persistent, Priority: d.Priority, CorrelationId: d.CorrelationId,
		ReplyTo: d.ReplyTo, MessageId: d.MessageId, Timestamp: d.Timestamp, Type: d.Type,
		AppId: d.AppId, Body: d.Body,
	}
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
		pub, err := m.message(now)
		if err != nil {
			return nil, err
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
