package amqpbackend

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/job"
)

// lease is a delivery this process handed out by Reserve and holds
// unacknowledged until its job finishes, is retried or the lease expires.
type lease struct {
	c       *consumer
	d       amqp.Delivery
	doc     *doc // the job as reserved: Deliveries counts this delivery
	gen     uint64
	expires time.Time
}

// addLease files a lease: a new one, or one whose operation failed before
// its delivery was settled, so the caller may try again or let it expire.
func (b *Backend) addLease(token string, l *lease) {
	b.leaseMu.Lock()
	b.leases[token] = l
	b.leaseMu.Unlock()
}

// claimLease takes the lease out of the table, so that nothing else (an
// Extend, the reaper, a second Complete) acts on it meanwhile. It returns
// nil, or an error wrapping job.ErrLeaseLost, if this process does not
// hold it.
func (b *Backend) claimLease(jl job.Lease) (*lease, error) {
	b.leaseMu.Lock()
	defer b.leaseMu.Unlock()
	l := b.leases[jl.Token]
	if l == nil || l.doc.ID != jl.JobID {
		return nil, job.ErrLeaseLost
	}
	delete(b.leases, jl.Token)
	return l, nil
}

// settle acks (done) or requeues (not done) the lease's delivery and gives
// its prefetch back. It reports whether the broker got the ack: a delivery
// of a lost session cannot be settled, the broker has requeued it.
func (b *Backend) settle(l *lease, ack bool) bool {
	defer l.c.released(l.gen)
	var err error
	if ack {
		err = l.d.Ack(false)
	} else {
		err = l.d.Nack(false, true)
	}
	return err == nil
}

// dropLeases forgets consumer c's leases of session gen.
func (b *Backend) dropLeases(c *consumer, gen uint64) {
	b.leaseMu.Lock()
	defer b.leaseMu.Unlock()
	for t, l := range b.leases {
		if l.c == c && l.gen == gen {
			delete(b.leases, t)
		}
	}
}

// reapLeases returns the deliveries of expired leases to the broker, which
// delivers them again and counts the return in x-delivery-count.
func (b *Backend) reapLeases() {
	defer b.bg.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-b.closing:
			return
		case now := <-tick.C:
			var expired []*lease
			b.leaseMu.Lock()
			for t, l := range b.leases {
				if now.After(l.expires) {
					expired = append(expired, l)
					delete(b.leases, t)
				}
			}
			b.leaseMu.Unlock()
			for _, l := range expired {
				b.settle(l, false)
			}
		}
	}
}

// deliveryCount is how often the broker delivered this message before
// (quorum queues count returns in x-delivery-count).
func deliveryCount(d amqp.Delivery) int {
	switch n := d.Headers["x-delivery-count"].(type) {
	case int64:
		return int(n)
	case int32:
		return int(n)
	case int:
		return n
	}
	if d.Redelivered {
		return 1
	}
	return 0
}
