package amqpbackend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/avast/retry-go/v4"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/job"
)

// errBrokerUnavailable: the connection is down and did not come back within
// Config.ReconnectWait. Not a sentinel: the caller retries.
var errBrokerUnavailable = errors.New("amqpbackend: broker unavailable")

// session is one connection to the broker with its confirming publisher
// channel. A Backend replaces its session when the connection drops; gen
// tells deliveries of an old session from the current one's.
type session struct {
	conn *amqp.Connection
	pub  *amqp.Channel
	gen  uint64
	lost chan struct{} // closed once this session is gone
}

// dialTimeout bounds a connection attempt, the handshake included.
const dialTimeout = 30 * time.Second

// dial opens a session, until ctx ends, on one of the nodes Config.URL
// names (see dialURL), and declares every queue and delay
// level this Backend has declared before, so a restarted broker (or a new
// node) has the topology again before anything is published.
func (b *Backend) dial(ctx context.Context, gen uint64) (*session, error) {
	props := amqp.NewConnectionProperties()
	host, _ := os.Hostname()
	props.SetClientConnectionName(fmt.Sprintf("conveyor %s/%d", host, os.Getpid()))
	conn, err := b.dialURL(ctx, amqp.Config{Heartbeat: b.cfg.Heartbeat, Properties: props})
	if err != nil {
		return nil, err
	}
	s := &session{conn: conn, gen: gen, lost: make(chan struct{})}
	if err := b.redeclare(s); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if s.pub, err = conn.Channel(); err == nil {
		err = s.pub.Confirm(false)
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("amqpbackend: publisher channel: %w", err)
	}
	return s, nil
}

// redeclare declares the base exchanges and every entity b.declared
// remembers.
func (b *Backend) redeclare(s *session) error {
	if err := onChannel(s.conn, func(ch *amqp.Channel) error { return declareBase(ch, b.names) }); err != nil {
		return err
	}
	b.topoMu.Lock()
	defer b.topoMu.Unlock()
	for _, declare := range b.declared {
		if err := onChannel(s.conn, declare); err != nil {
			return err
		}
	}
	return nil
}

// onChannel runs fn on a fresh channel of conn. Declares use their own
// channel because a refused declare closes the channel it ran on.
func onChannel(conn *amqp.Connection, fn func(*amqp.Channel) error) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqpbackend: channel: %w", err)
	}
	defer ch.Close()
	return fn(ch)
}

// keep watches the session and, when its connection or publisher channel
// closes, dials again with exponential backoff until it succeeds or the
// Backend closes. Consumers notice through session.lost.
func (b *Backend) keep(s *session) {
	defer b.bg.Done()
	for {
		connClosed := s.conn.NotifyClose(make(chan *amqp.Error, 1))
		pubClosed := s.pub.NotifyClose(make(chan *amqp.Error, 1))
		var why *amqp.Error
		select {
		case <-b.closing:
			_ = s.conn.Close()
			close(s.lost)
			return
		case why = <-connClosed:
		case why = <-pubClosed:
		}
		b.cfg.Logger.Warn("amqpbackend: broker connection lost; reconnecting", "err", why)
		_ = s.conn.Close()
		b.mu.Lock()
		b.cur, b.up = nil, make(chan struct{})
		b.mu.Unlock()
		close(s.lost)

		var next *session
		err := retry.Do(func() (err error) {
			next, err = b.dial(b.ctx, s.gen+1)
			return err
		}, retry.Context(b.ctx), retry.Attempts(0), retry.DelayType(retry.BackOffDelay),
			retry.Delay(50*time.Millisecond), retry.MaxDelay(2*time.Second), retry.LastErrorOnly(true),
			retry.OnRetry(func(n uint, err error) {
				if n%20 == 0 {
					b.cfg.Logger.Warn("amqpbackend: still reconnecting", "attempt", n+1, "err", err)
				}
			}))
		if err != nil { // the Backend closed
			return
		}
		b.cfg.Logger.Info("amqpbackend: reconnected", "generation", next.gen)
		b.mu.Lock()
		b.cur = next
		close(b.up)
		b.mu.Unlock()
		s = next
	}
}

// session returns the live session, waiting up to Config.ReconnectWait
// (or until ctx ends) while the connection is being re-established.
func (b *Backend) session(ctx context.Context) (*session, error) {
	var timer *time.Timer
	for {
		b.mu.Lock()
		s, up := b.cur, b.up
		b.mu.Unlock()
		if s != nil {
			return s, nil
		}
		if timer == nil {
			timer = time.NewTimer(b.cfg.ReconnectWait)
			defer timer.Stop()
		}
		select {
		case <-up:
		case <-b.closing:
			return nil, job.ErrClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", errBrokerUnavailable, ctx.Err())
		case <-timer.C:
			return nil, fmt.Errorf("%w: not reconnected within %s", errBrokerUnavailable, b.cfg.ReconnectWait)
		}
	}
}

// ensure declares the entity name with declare once per Backend (and
// again after every reconnect).
func (b *Backend) ensure(ctx context.Context, name string, declare func(*amqp.Channel) error) error {
	if b.isDeclared(name) {
		return nil
	}
	s, err := b.session(ctx)
	if err != nil {
		return err
	}
	if err := onChannel(s.conn, declare); err != nil {
		return fmt.Errorf("amqpbackend: %w", err)
	}
	b.topoMu.Lock()
	b.declared[name] = declare
	b.topoMu.Unlock()
	return nil
}

// isDeclared reports whether this Backend declared the entity name (and
// so waited for it to serve reads; it declares it again after a reconnect).
func (b *Backend) isDeclared(name string) bool {
	b.topoMu.Lock()
	defer b.topoMu.Unlock()
	_, ok := b.declared[name]
	return ok
}

// ensureQueue declares queue q's work queue. A queue that already exists
// with another bound keeps it: the broker refuses to change a queue's
// arguments, and an operator changes a live bound with a policy
// (rabbitmqctl set_policy ... '{"max-length": N}').
func (b *Backend) ensureQueue(ctx context.Context, q string, bound int) error {
	return b.ensure(ctx, b.names.work(q), func(ch *amqp.Channel) error {
		st, err := declareQueue(ch, b.names, q, b.cfg.QueueType, bound)
		if isPrecondition(err) {
			b.cfg.Logger.Warn("amqpbackend: queue exists with other arguments; keeping them", "queue", b.names.work(q), "bound", bound, "err", err)
			return nil
		}
		if err != nil || b.cfg.QueueType != "quorum" {
			return err
		}
		return b.readyAfterDeclare(st)
	})
}

// ensureDead declares queue q's dead-letter queue.
func (b *Backend) ensureDead(ctx context.Context, q string) error {
	return b.ensure(ctx, b.names.dead(q), func(ch *amqp.Channel) error {
		st, err := declareDead(ch, b.names, q)
		if err != nil {
			return err
		}
		return b.readyAfterDeclare(st)
	})
}

// readyAfterDeclare waits for a quorum queue just declared (again, after a
// reconnect) to serve reads, so that a consumer or a basic.get of this or
// another process does not meet noproc (see ready.go). A queue the broker
// reports messages or consumers of is up already: its count came from its
// member. One it reports empty is new, empty, or not up (the broker
// reports zero when it cannot ask the member).
func (b *Backend) readyAfterDeclare(st amqp.Queue) error {
	if st.Messages > 0 || st.Consumers > 0 {
		return nil
	}
	return b.awaitReady(b.ctx, st.Name)
}

// ensureLevel declares a delay level.
func (b *Backend) ensureLevel(ctx context.Context, level int) error {
	return b.ensure(ctx, b.names.delay(level), func(ch *amqp.Channel) error { return declareDelay(ch, b.names, level) })
}
