package amqpbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/job"
)

// DeadParams selects dead letters of one queue.
type DeadParams struct {
	Queue string
	Limit int // how many at most; 0 means 100 for ListDead, all for ReplayDead
}

// ListDead reads up to p.Limit messages of the queue's dead-letter queue,
// oldest first, and leaves them there. A message whose body is no job comes
// back with its body as Payload and no task name.
func (b *Backend) ListDead(ctx context.Context, p DeadParams) ([]*job.Record, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	var out []*job.Record
	err := b.onDead(ctx, p.Queue, func(ch *amqp.Channel) error {
		out = out[:0] // what a failed attempt got went back to the queue
		for range limit {
			d, ok, err := ch.Get(b.names.dead(p.Queue), false) // unacked: closing the channel puts them back
			if err != nil || !ok {
				return err
			}
			out = append(out, deadRecord(d, p.Queue))
		}
		return nil
	})
	return out, err
}

// ReplayDead moves up to p.Limit of the queue's dead letters back into its
// work queue with a fresh delivery count, keeping their attempt history.
// With a store, a dead letter whose job was replayed or deleted since is
// dropped instead. Messages whose body is no job stay where they are.
func (b *Backend) ReplayDead(ctx context.Context, p DeadParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	n := 0
	err := b.onDead(ctx, p.Queue, func(ch *amqp.Channel) error {
		for p.Limit <= 0 || n < p.Limit {
			// Held unacked until the channel closes, a message is got once.
			d, ok, err := ch.Get(b.names.dead(p.Queue), false)
			if err != nil || !ok {
				return err
			}
			dc, err := decode(d, p.Queue)
			if err != nil {
				continue // no job: it goes back when the channel closes
			}
			replayed, err := b.replay(ctx, dc)
			if err != nil {
				return err
			}
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("amqpbackend: ack dead letter: %w", err)
			}
			if replayed {
				n++
			}
		}
		return nil
	})
	return n, err
}

// replay publishes a dead letter's job again as a new job run, and reports
// false for one the store says is no longer dead.
func (b *Backend) replay(ctx context.Context, dc *doc) (bool, error) {
	now := b.cfg.Clock.Now()
	dc.State, dc.RunAt, dc.FinishedAt, dc.Deliveries, dc.RetriedFrom = job.Pending, now, time.Time{}, 0, 0
	dc.Incarnation++
	if b.st != nil {
		_, err := b.st.update(ctx, dc.ID, func(cur *doc) error {
			if cur.State != job.Dead || cur.Incarnation >= dc.Incarnation {
				return errStale
			}
			cur.State, cur.RunAt, cur.FinishedAt, cur.Deliveries, cur.Incarnation, cur.RetriedFrom = dc.State, now, time.Time{}, 0, dc.Incarnation, 0
			return nil
		})
		if errors.Is(err, errStale) || errors.Is(err, job.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	if err := b.republish(ctx, dc, now); err != nil {
		return false, err
	}
	return true, nil
}

// republish puts a replayed job back into its work queue, declaring it
// first: this process may never have enqueued to it.
func (b *Backend) republish(ctx context.Context, d *doc, now time.Time) error {
	if err := b.ensureQueue(ctx, d.Queue, 0); err != nil {
		return err
	}
	return b.send(ctx, d, now)
}

// onDead runs fn on a channel of its own connection (see onOwnConnection:
// a dead-letter queue is declared with the first dead letter, a moment
// before it may be read) if queue q's dead-letter queue exists. Closing
// the channel returns whatever fn got and did not ack.
func (b *Backend) onDead(ctx context.Context, q string, fn func(ch *amqp.Channel) error) error {
	return b.onOwnConnection(ctx, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclarePassive(b.names.dead(q), true, false, false, false, nil)
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return nil
		}
		if err != nil {
			return fmt.Errorf("amqpbackend: dead-letter queue of %s: %w", q, err)
		}
		return fn(ch)
	})
}

// deadRecord turns a dead letter into a record for inspection. One that
// is no job shows what it has: its message-id as ID, its type as task,
// its body as payload, its headers (but the reason) as headers, and the
// reason as its one error.
func deadRecord(d amqp.Delivery, q string) *job.Record {
	dc, err := decode(d, q)
	if err == nil {
		dc.State = job.Dead
		return &dc.Record
	}
	reason, _ := d.Headers[reasonHeader].(string)
	at := d.Timestamp
	if n, ok := d.Headers[hDeadAt].(int64); ok {
		at = time.Unix(0, n)
	}
	r := &job.Record{ID: d.MessageId, Queue: q, Task: d.Type, Payload: d.Body, State: job.Dead,
		Errors: []job.AttemptError{{At: at, Error: reason}}}
	for k, v := range d.Headers {
		if k == reasonHeader || k == hDeadAt || k == "x-delivery-count" { // the broker's, not the message's
			continue
		}
		if r.Headers == nil {
			r.Headers = map[string]string{}
		}
		switch v := v.(type) {
		case string:
			r.Headers[k] = v
		case []byte:
			r.Headers[k] = string(v)
		default:
			r.Headers[k] = fmt.Sprint(v)
		}
	}
	return r
}
