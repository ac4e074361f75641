package celery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/job"
)

// amqpTransport is Celery on RabbitMQ: per queue a durable direct exchange
// and a durable classic queue of the queue's name, bound by that name, as
// Celery declares them (task_default_queue "celery" and its exchange).
type amqpTransport struct {
	cfg  Config
	conn *amqp.Connection

	mu       sync.Mutex // the publishing channel, in confirm mode
	pub      *amqp.Channel
	declared map[string]bool

	cmu       sync.Mutex
	consumers map[string]*amqp.Channel
}

func dialAMQP(ctx context.Context, cfg Config) (*amqpTransport, error) {
	conn, err := amqp.DialConfig(cfg.AMQPURL, amqp.Config{Properties: amqp.Table{"connection_name": cfg.Origin}})
	if err != nil {
		return nil, fmt.Errorf("celery: dial RabbitMQ: %w", err)
	}
	a := &amqpTransport{cfg: cfg, conn: conn, declared: map[string]bool{}, consumers: map[string]*amqp.Channel{}}
	if err := a.openPub(); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return a, ctx.Err()
}

// openPub opens the publishing channel; a.mu is held (or a is new). A
// channel error (a declare that disagrees with the broker's) closes it,
// so each use checks.
func (a *amqpTransport) openPub() error {
	ch, err := a.conn.Channel()
	if err != nil {
		return a.wrap("open channel", err)
	}
	if err := ch.Confirm(false); err != nil {
		return a.wrap("confirm mode", err)
	}
	a.pub = ch
	a.declared = map[string]bool{}
	return nil
}

func (a *amqpTransport) wrap(what string, err error) error {
	if a.conn.IsClosed() {
		return fmt.Errorf("celery: RabbitMQ %s: %w: %w", what, job.ErrClosed, err)
	}
	return fmt.Errorf("celery: RabbitMQ %s: %w", what, err)
}

// declareHook, set by tests, learns every name declared, for cleanup.
var declareHook func(name string)

// declare makes the queue (and, for a work queue, its exchange and
// binding) exist, with Celery's arguments so both sides agree.
func declare(ch *amqp.Channel, to dest) error {
	if declareHook != nil {
		declareHook(to.queue)
	}
	if _, err := ch.QueueDeclare(to.queue, true, false, false, false, nil); err != nil {
		return err
	}
	if to.dead {
		return nil
	}
	if err := ch.ExchangeDeclare(to.queue, "direct", true, false, false, false, nil); err != nil {
		return err
	}
	return ch.QueueBind(to.queue, to.queue, to.queue, false, nil)
}

func (a *amqpTransport) usePub(fn func(ch *amqp.Channel) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pub == nil || a.pub.IsClosed() {
		if err := a.openPub(); err != nil {
			return err
		}
	}
	return fn(a.pub)
}

func publishing(m *message) amqp.Publishing {
	return amqp.Publishing{
		Headers: toTable(m.Headers), ContentType: m.ContentType, ContentEncoding: m.ContentEncoding,
		CorrelationId: m.CorrelationID, ReplyTo: m.ReplyTo, Priority: uint8(min(max(m.Priority, 0), 255)),
		DeliveryMode: amqp.Persistent, Body: m.Body,
	}
}

// publish sends ms and returns once the broker confirmed every one.
func (a *amqpTransport) publish(ctx context.Context, to dest, ms []*message) error {
	var confirms []*amqp.DeferredConfirmation
	err := a.usePub(func(ch *amqp.Channel) error {
		if !a.declared[to.queue] {
			if err := declare(ch, to); err != nil {
				return a.wrap("declare "+to.queue, err)
			}
			a.declared[to.queue] = true
		}
		exchange, key := to.queue, to.queue
		if to.dead {
			exchange = ""
		}
		for _, m := range ms {
			c, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, publishing(m))
			if err != nil {
				return a.wrap("publish to "+to.queue, err)
			}
			confirms = append(confirms, c)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return waitConfirms(ctx, confirms)
}

func waitConfirms(ctx context.Context, cs []*amqp.DeferredConfirmation) error {
	for _, c := range cs {
		ok, err := c.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("celery: RabbitMQ confirm: %w", err)
		}
		if !ok {
			return fmt.Errorf("celery: RabbitMQ refused a message (nack)")
		}
	}
	return nil
}

// reply sends an RPC result to the client's reply queue through the
// default exchange, as Celery's rpc:// backend does.
func (a *amqpTransport) reply(ctx context.Context, to, correlationID string, body []byte) error {
	var c *amqp.DeferredConfirmation
	err := a.usePub(func(ch *amqp.Channel) error {
		var err error
		c, err = ch.PublishWithDeferredConfirmWithContext(ctx, "", to, false, false, amqp.Publishing{
			ContentType: "application/json", ContentEncoding: "utf-8", CorrelationId: correlationID, Body: body,
			DeliveryMode: amqp.Persistent,
		})
		return err
	})
	if err != nil {
		return err
	}
	return waitConfirms(ctx, []*amqp.DeferredConfirmation{c})
}

// start consumes the queue on a channel of its own with manual acks.
func (a *amqpTransport) start(ctx context.Context, queue string, b *Broker) error {
	ch, err := a.conn.Channel()
	if err != nil {
		return a.wrap("open channel", err)
	}
	if err := declare(ch, dest{queue: queue}); err != nil {
		return a.wrap("declare "+queue, err)
	}
	if err := ch.Qos(a.cfg.Prefetch, 0, false); err != nil {
		return a.wrap("qos", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, queue, "", false, false, false, false, nil)
	if err != nil {
		return a.wrap("consume "+queue, err)
	}
	a.cmu.Lock()
	a.consumers[queue] = ch
	a.cmu.Unlock()
	go func() {
		for d := range deliveries {
			h := fromTable(d.Headers)
			if d.Redelivered {
				h["redelivered"] = true // a consumer died holding it
			}
			b.arrive(queue, &message{
				Headers: h, Body: d.Body, ContentType: d.ContentType,
				ContentEncoding: d.ContentEncoding, CorrelationID: d.CorrelationId, ReplyTo: d.ReplyTo,
				Priority: int(d.Priority),
			}, &amqpReceipt{d: d}, nil)
		}
		a.cmu.Lock()
		delete(a.consumers, queue)
		a.cmu.Unlock()
		if ctx.Err() == nil {
			b.consumerLost(queue) // the broker requeued what this channel held
		}
	}()
	return nil
}

type amqpReceipt struct{ d amqp.Delivery }

// settle publishes next with a confirm before it acks: a crash between
// the two leaves both messages, never neither (at least once).
func (a *amqpTransport) settle(ctx context.Context, r receipt, next *message, to dest) error {
	if next != nil {
		if err := a.publish(ctx, to, []*message{next}); err != nil {
			return err
		}
	}
	if err := r.(*amqpReceipt).d.Ack(false); err != nil {
		return fmt.Errorf("celery: RabbitMQ ack: %w: %w", job.ErrLeaseLost, err)
	}
	return nil
}

func (a *amqpTransport) release(rs []receipt) {
	for _, r := range rs {
		_ = r.(*amqpReceipt).d.Nack(false, true)
	}
}

// held raises the consumer's prefetch by the messages it holds for a
// later eta, as Celery's worker does, so they do not starve due ones.
func (a *amqpTransport) held(queue string, later int) {
	a.cmu.Lock()
	ch := a.consumers[queue]
	a.cmu.Unlock()
	if ch != nil {
		_ = ch.Qos(a.cfg.Prefetch+later, 0, false)
	}
}

func (a *amqpTransport) close() error {
	err := a.conn.Close()
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}

// toTable converts JSON-shaped headers to an AMQP table.
func toTable(h map[string]any) amqp.Table {
	t := amqp.Table{}
	for k, v := range h {
		t[k] = toField(v)
	}
	return t
}

func toField(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return toTable(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toField(e)
		}
		return out
	case int:
		return int64(x)
	case time.Time:
		return x.UTC().Format(pyTime)
	}
	return v
}

// fromTable converts an AMQP table to JSON-shaped headers.
func fromTable(t amqp.Table) map[string]any {
	h := make(map[string]any, len(t))
	for k, v := range t {
		h[k] = fromField(v)
	}
	return h
}

func fromField(v any) any {
	switch x := v.(type) {
	case amqp.Table:
		return fromTable(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromField(e)
		}
		return out
	case []byte:
		return string(x)
	}
	return v
}
