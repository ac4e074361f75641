package amqpbackend

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/backends"
)

// consumer holds one queue's deliveries for this Backend: a channel
// consuming the work queue with Config.Prefetch, and the deliveries that
// arrived and wait for a Reserve, in job order.
type consumer struct {
	b     *Backend
	queue string

	mu      sync.Mutex
	items   itemHeap
	ch      *amqp.Channel // the consuming channel; nil while reconnecting
	gen     uint64        // the session ch belongs to
	held    int           // leases on ch: with len(items), the prefetch in use
	unacked int           // deliveries on ch not settled: waiting, leased, held until due, hopping, malformed
	seq     uint64
	arrived chan struct{} // closed and replaced when a delivery arrives
}

// item is a delivery waiting for a Reserve.
type item struct {
	d   amqp.Delivery
	doc *doc
	gen uint64
	seq uint64 // arrival order, which is the queue's order
}

// itemHeap orders waiting deliveries as Reserve hands them out: highest
// priority, then earliest run-at, then arrival.
type itemHeap []*item

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.doc.Priority != b.doc.Priority {
		return a.doc.Priority > b.doc.Priority
	}
	if !a.doc.RunAt.Equal(b.doc.RunAt) {
		return a.doc.RunAt.Before(b.doc.RunAt)
	}
	return a.seq < b.seq
}
func (h itemHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)   { *h = append(*h, x.(*item)) }
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

// consumer returns queue q's consumer, starting it on first use. It
// returns nil while the queue does not exist: only an enqueue declares a
// queue, because only it knows the queue's bound, which the broker fixes
// at the first declaration.
func (b *Backend) consumer(ctx context.Context, q string) (*consumer, error) {
	b.consMu.Lock()
	defer b.consMu.Unlock()
	if c := b.consumers[q]; c != nil {
		return c, nil
	}
	s, err := b.session(ctx)
	if err != nil {
		return nil, err
	}
	var st amqp.Queue
	err = onChannel(s.conn, func(ch *amqp.Channel) (err error) {
		st, err = ch.QueueDeclarePassive(b.names.work(q), true, false, false, false, nil)
		return err
	})
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("amqpbackend: queue %s: %w", b.names.work(q), err)
	}
	// A queue found here may still be being declared, by another process
	// or by an Enqueue of this one: it exists before its quorum member has
	// started, and a consume then would meet noproc (see ready.go).
	if !b.isDeclared(b.names.work(q)) {
		if err := b.readyAfterDeclare(st); err != nil {
			return nil, err
		}
	}
	c := &consumer{b: b, queue: q, arrived: make(chan struct{})}
	deliveries, err := c.open(s)
	if err != nil {
		return nil, err
	}
	b.consumers[q] = c
	b.bg.Add(1)
	go c.run(deliveries, s.gen)
	return c, nil
}

// open starts consuming on a new channel of s.
func (c *consumer) open(s *session) (<-chan amqp.Delivery, error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("amqpbackend: channel: %w", err)
	}
	if err := ch.Qos(c.b.cfg.Prefetch, 0, false); err != nil {
		return nil, fmt.Errorf("amqpbackend: qos: %w", err)
	}
	deliveries, err := ch.Consume(c.b.names.work(c.queue), "", false, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("amqpbackend: consume %s: %w", c.b.names.work(c.queue), err)
	}
	c.mu.Lock()
	c.ch, c.gen, c.held, c.unacked = ch, s.gen, 0, 0
	c.mu.Unlock()
	return deliveries, nil
}

// run takes deliveries until the channel closes, then drops what the
// channel held (the broker requeues it) and consumes again on the next
// session, until the Backend closes.
func (c *consumer) run(deliveries <-chan amqp.Delivery, gen uint64) {
	defer c.b.bg.Done()
	for {
		for d := range deliveries {
			c.arrive(d, gen)
		}
		c.drop(gen)
		for {
			s, err := c.b.session(c.b.ctx)
			if errors.Is(err, context.Canceled) || c.b.closed() != nil {
				return
			}
			if err == nil {
				if deliveries, err = c.open(s); err == nil {
					gen = s.gen
					break
				}
				c.b.cfg.Logger.Warn("amqpbackend: consumer did not restart; retrying", "queue", c.queue, "err", err)
			}
			select {
			case <-c.b.closing:
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// drop forgets the deliveries of session gen, whose channel is gone (the
// broker has requeued them), and without a store its leases too.
func (c *consumer) drop(gen uint64) {
	c.mu.Lock()
	kept := c.items[:0]
	for _, it := range c.items {
		if it.gen != gen {
			kept = append(kept, it)
		}
	}
	c.items = kept
	heap.Init(&c.items)
	if c.gen == gen {
		c.ch, c.held, c.unacked = nil, 0, 0
	}
	c.mu.Unlock()
	if c.b.st == nil {
		c.b.dropLeases(c, gen)
	}
	// With a store its leases stay: the store, not the ack, records a
	// job's outcome, and the copies the broker requeued wait while the
	// leases last (claim: errHeld).
}

// holdLate: a delivery due within this long is held in memory until it is
// due instead of going down the delay levels again: a timer is more
// precise than a hop through the broker.
const holdLate = 64 * time.Millisecond

// arrive files one delivery: a job due now waits for a Reserve, one due
// within holdLate is filed when due, one due later goes back to the delay
// levels, a body that is no job goes to dead letter.
func (c *consumer) arrive(d amqp.Delivery, gen uint64) {
	c.mu.Lock()
	if c.gen == gen {
		c.unacked++
	}
	c.mu.Unlock()
	dc, err := decode(d, c.queue)
	var left time.Duration
	if err == nil {
		left = time.Until(dc.RunAt)
	}
	switch {
	case err != nil:
		c.b.spawn(func() { c.b.rejectMalformed(d, c.queue, err); c.settled(gen) })
	case left > holdLate:
		c.b.spawn(func() { c.b.hop(d, dc); c.settled(gen) })
	case left > 0:
		time.AfterFunc(left, func() { c.file(d, dc, gen, true) })
	}
	c.file(d, dc, gen, err == nil && left <= 0)
}

// file puts a due delivery (if due) among those waiting for a Reserve and
// marks the message arrived. Under c.mu, in this order: a Reserve waiting
// in awaitTransit sees the job filed and no longer in transit at once.
func (c *consumer) file(d amqp.Delivery, dc *doc, gen uint64, due bool) {
	c.mu.Lock()
	first := false
	if due {
		c.seq++
		heap.Push(&c.items, &item{d: d, doc: dc, gen: gen, seq: c.seq})
		first = len(c.items) == 1
	}
	c.b.transit.arrived(c.queue, d.MessageId)
	close(c.arrived)
	c.arrived = make(chan struct{})
	c.mu.Unlock()
	if first {
		c.b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: c.queue})
	}
}

// take pops up to n waiting deliveries of the current channel.
func (c *consumer) take(n int) []*item {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*item
	for len(out) < n && len(c.items) > 0 {
		it := heap.Pop(&c.items).(*item)
		if it.gen == c.gen && c.ch != nil {
			out = append(out, it)
			c.held++
		}
	}
	return out
}

// heldPoll is how often a delivery whose job another delivery holds
// (errHeld) is tried again.
const heldPoll = 100 * time.Millisecond

// recordPoll is how often a delivery whose job is not recorded yet (its
// enqueue publishes, then records) is tried again, when another process
// enqueued it (this process's own are waited for: recording).
var recordPoll = 10 * time.Millisecond

// putBack files a delivery taken by take among the waiting ones again
// after d, unless its session ended meanwhile (the broker requeued it).
// It keeps its share of the prefetch until then.
func (c *consumer) putBack(it *item, d time.Duration) {
	time.AfterFunc(d, func() { c.refile(it) })
}

// refile is putBack's filing, now.
func (c *consumer) refile(it *item) {
	c.mu.Lock()
	current := it.gen == c.gen && c.ch != nil
	if current {
		if c.held > 0 {
			c.held--
		}
		heap.Push(&c.items, it)
		close(c.arrived)
		c.arrived = make(chan struct{})
	}
	c.mu.Unlock()
	if current {
		c.b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: c.queue})
	}
}

// released gives back the prefetch a lease of session gen used, once its
// delivery is settled.
func (c *consumer) released(gen uint64) {
	c.mu.Lock()
	if c.gen == gen && c.held > 0 {
		c.held--
	}
	c.mu.Unlock()
	c.settled(gen)
}

// settled counts a delivery of session gen acked or returned.
func (c *consumer) settled(gen uint64) {
	c.mu.Lock()
	if c.gen == gen && c.unacked > 0 {
		c.unacked--
	}
	c.mu.Unlock()
}

// inFlight is how many deliveries of queue q this process holds
// unacknowledged: the broker counts them nowhere a client can read.
func (b *Backend) inFlight(q string) int {
	b.consMu.Lock()
	c := b.consumers[q]
	b.consMu.Unlock()
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unacked
}

// credit is how many more deliveries the broker will push to this
// consumer before an ack.
func (c *consumer) credit() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.creditLocked()
}

func (c *consumer) creditLocked() int {
	if c.ch == nil {
		return 0
	}
	return c.b.cfg.Prefetch - len(c.items) - c.held
}

// awaitTransit waits, up to Config.TransitWait, for the messages this
// process published into the queue before the call to arrive, while they
// will: when nothing is waiting here, or when all of them fit in the
// prefetch window (so that Reserve picks by priority among them too). A
// saturated consumer does not wait: it has jobs, and the rest arrive as it
// acks. Messages published during the call are not waited for, or a steady
// stream would hold Reserve for the whole TransitWait.
func (c *consumer) awaitTransit(ctx context.Context) {
	start := time.Now()
	deadline := time.NewTimer(c.b.cfg.TransitWait)
	defer deadline.Stop()
	for {
		c.mu.Lock() // arrive files and counts under c.mu: one consistent view
		waiting, arrived, credit := len(c.items), c.arrived, c.creditLocked()
		n := c.b.transit.pending(c.queue, start.Add(-c.b.cfg.TransitWait), start, credit)
		c.mu.Unlock()
		if n == 0 || credit <= 0 || (waiting > 0 && n > credit) {
			return
		}
		select {
		case <-arrived:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		case <-c.b.closing:
			return
		}
	}
}

// pull fetches one message with basic.get and files it as arrive does, for
// when the consumer's prefetch is all in use and the broker pushes nothing
// more. It reports whether the queue had a message.
func (c *consumer) pull() (bool, error) {
	c.mu.Lock()
	ch, gen := c.ch, c.gen
	c.mu.Unlock()
	if ch == nil {
		return false, nil
	}
	d, ok, err := ch.Get(c.b.names.work(c.queue), false)
	if err != nil {
		return false, fmt.Errorf("amqpbackend: basic.get %s: %w", c.queue, err)
	}
	if ok {
		c.arrive(d, gen)
	}
	return ok, nil
}
