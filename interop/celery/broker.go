package celery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// receipt is a transport's handle on one unacknowledged message.
type receipt any

// dest is where settle publishes a message before it acks the old one.
type dest struct {
	queue string
	dead  bool // a dead-letter queue, published to directly
}

// transport is what the Broker needs of RabbitMQ or Redis.
type transport interface {
	publish(ctx context.Context, to dest, ms []*message) error
	// start consumes queue until ctx ends, handing each message to b.
	start(ctx context.Context, queue string, b *Broker) error
	// settle publishes next (if any) to "to", then acks r.
	settle(ctx context.Context, r receipt, next *message, to dest) error
	// release gives unacked messages back to their queue, at Close.
	release(rs []receipt)
	// held tells the transport how many messages the queue holds that
	// are not due, so prefetch leaves room for due ones.
	held(queue string, later int)
	close() error
}

// Broker is a Conveyor backend over a Celery broker. Create it with New.
type Broker struct {
	cfg    Config
	t      transport
	amqp   *amqpTransport // the transport when it is RabbitMQ, for RPC replies
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool

	mu        sync.Mutex
	queues    map[string]*local
	leases    map[string]*item // by lease token
	running   map[string]*item // leased, by job ID
	seq       uint64
	listeners map[chan backends.Event]map[string]bool
}

var (
	_ backends.Backend   = (*Broker)(nil)
	_ backends.Inspector = (*Broker)(nil)
	_ backends.Notifier  = (*Broker)(nil)
)

// New connects to the broker cfg names.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, queues: map[string]*local{}, leases: map[string]*item{}, running: map[string]*item{},
		listeners: map[chan backends.Event]map[string]bool{}}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if cfg.AMQPURL != "" {
		a, err := dialAMQP(ctx, cfg)
		if err != nil {
			return nil, err
		}
		b.t, b.amqp = a, a
	} else {
		b.t = newRedisTransport(cfg)
	}
	return b, nil
}

func (b *Broker) usable(ctx context.Context) error {
	if b.closed.Load() {
		return fmt.Errorf("celery broker: %w", job.ErrClosed)
	}
	return ctx.Err()
}

func (b *Broker) local(q string) *local {
	l := b.queues[q]
	if l == nil {
		l = newLocal()
		b.queues[q] = l
	}
	return l
}

func token() string {
	buf := make([]byte, 12)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}

// Enqueue publishes protocol 2 messages to each job's queue (a Celery
// queue: an exchange and a queue of that name bound by it on RabbitMQ, a
// list of that name on Redis). Unique keys and depth bounds are not
// supported: a Celery broker keeps neither, and the batch is refused
// with job.ErrUnsupported. A job ID enqueued twice is two messages.
func (b *Broker) Enqueue(ctx context.Context, p backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil { // what every backend refuses
		return nil, err
	}
	now := b.cfg.Clock.Now()
	byQueue := map[string][]*message{}
	var order []string
	res := make([]backends.EnqueueResult, len(p.Jobs))
	tags := make([]string, len(p.Jobs))
	for i, ins := range p.Jobs {
		switch {
		case ins.UniqueKey != "":
			return nil, fmt.Errorf("%w: unique keys on a Celery broker", job.ErrUnsupported)
		case ins.MaxDepth > 0:
			return nil, fmt.Errorf("%w: depth bounds on a Celery broker", job.ErrUnsupported)
		}
		m, err := encode(ins, b.cfg.Origin, now)
		if err != nil {
			return nil, err
		}
		if b.amqp == nil {
			m.Priority = 0 // kombu's Redis lists: 0 is the first served, so Conveyor's order stays in a header
		}
		tags[i] = token()
		m.Headers[hTransit] = tags[i]
		if _, ok := byQueue[ins.Queue]; !ok {
			order = append(order, ins.Queue)
		}
		byQueue[ins.Queue] = append(byQueue[ins.Queue], m)
		res[i] = backends.EnqueueResult{ID: ins.ID, State: job.Pending}
		if ins.RunAt.After(now) {
			res[i].State = job.Scheduled
		}
	}
	b.mu.Lock()
	for i, ins := range p.Jobs {
		b.local(ins.Queue).transit[tags[i]] = now
	}
	b.mu.Unlock()
	for _, q := range order {
		if err := b.t.publish(ctx, dest{queue: q}, byQueue[q]); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// arrive files a message a consumer received (env is a transport's error
// taking the message apart). A message that is not one this package can
// run is dead-lettered here, so no caller of Reserve ever sees it.
func (b *Broker) arrive(queue string, m *message, r receipt, env error) {
	now := b.cfg.Clock.Now()
	var d *delivered
	err := env
	if err == nil {
		d, err = decode(m, queue, now)
	}
	if err != nil {
		b.rejectMalformed(queue, m, r, err)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.local(queue)
	if tag, ok := m.Headers[hTransit].(string); ok {
		delete(l.transit, tag)
	}
	b.seq++
	l.add(&item{d: d, r: r, queue: queue, seq: b.seq}, now)
	b.t.held(queue, l.later.Len())
	b.notify(backends.Event{Kind: backends.JobsAvailable, Queue: queue})
}

// rejectMalformed dead-letters a message with the reason in its headers
// and, when its id is known, stores the failure where its client looks.
func (b *Broker) rejectMalformed(queue string, m *message, r receipt, reason error) {
	dead := *m
	dead.Headers = map[string]any{}
	for k, v := range m.Headers {
		dead.Headers[k] = v
	}
	dead.Headers[ReasonHeader] = reason.Error()
	ctx := b.ctx
	if id, _ := m.Headers["id"].(string); id != "" {
		d := &delivered{rec: &job.Record{ID: id}, msg: m}
		_ = b.publishResult(ctx, d, StateFailure, failure(ErrorType, "", reason.Error()), reason.Error())
	}
	_ = b.t.settle(ctx, r, &dead, dest{queue: b.cfg.DeadQueue(queue), dead: true})
}

// ensureConsumer starts the queue's consumer on its first Reserve: a
// Broker that only enqueues takes nothing from Celery's queues.
func (b *Broker) ensureConsumer(q string) error {
	b.mu.Lock()
	l := b.local(q)
	if l.started {
		b.mu.Unlock()
		return nil
	}
	l.started = true
	b.mu.Unlock()
	if err := b.t.start(b.ctx, q, b); err != nil {
		b.mu.Lock()
		l.started = false
		b.mu.Unlock()
		return err
	}
	return nil
}

// consumerLost drops what a consumer held when its connection went: the
// broker gives those messages to the next consumer.
func (b *Broker) consumerLost(q string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.local(q)
	l.started = false
	l.ready.items, l.later.items = nil, nil
}

// room is how many more due messages the queue's consumer may fetch.
func (b *Broker) room(q string) (int, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.local(q)
	return b.cfg.Prefetch - l.ready.Len(), l.room
}

// Listen delivers JobsAvailable when a consumer of this process receives a
// message, and JobFinished when this process finishes a job.
func (b *Broker) Listen(ctx context.Context, p backends.ListenParams) (<-chan backends.Event, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	ch := make(chan backends.Event, 64)
	qs := map[string]bool{}
	for _, q := range p.Queues {
		qs[q] = true
	}
	b.mu.Lock()
	b.listeners[ch] = qs
	b.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-b.ctx.Done():
		}
		b.mu.Lock()
		delete(b.listeners, ch)
		b.mu.Unlock()
		close(ch)
	}()
	return ch, nil
}

// notify sends ev to listeners without blocking; b.mu is held.
func (b *Broker) notify(ev backends.Event) {
	for ch, qs := range b.listeners {
		if len(qs) > 0 && !qs[ev.Queue] {
			continue
		}
		select {
		case ch <- ev:
		default:
		}
	}
}

// Close stops the consumers, gives back every message this process held
// and closes the connection. Jobs are not affected.
func (b *Broker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.cancel()
	b.mu.Lock()
	var rs []receipt
	for _, l := range b.queues {
		for _, it := range l.ready.items {
			rs = append(rs, it.r)
		}
		for _, it := range l.later.items {
			rs = append(rs, it.r)
		}
	}
	for _, it := range b.leases {
		rs = append(rs, it.r)
	}
	b.mu.Unlock()
	b.t.release(rs)
	if err := b.t.close(); err != nil && !errors.Is(err, job.ErrClosed) {
		return err
	}
	return nil
}
