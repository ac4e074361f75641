package amqpbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/avast/retry-go/v4"
	amqp "github.com/rabbitmq/amqp091-go"
)

// A quorum queue is a Raft group, whose member on a node starts shortly
// after the declare returns (or after the node restarts). Until it has,
// basic.get and basic.consume fail with 541 INTERNAL_ERROR "noproc", an
// error the broker answers by closing the whole connection: on the
// Backend's own connection it would cost every lease this process holds.
// So what reads a queue it did not just wait for (ListDead, ReplayDead)
// does so on a connection of its own, and retries.

// readyWait bounds how long a read waits for a quorum queue's member to
// start: seconds under load, normally milliseconds.
const readyWait = 30 * time.Second

// isNoproc reports whether err is the broker saying the queue's process is
// not running (yet): 541 INTERNAL_ERROR.
func isNoproc(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.InternalError
}

// retryNoproc runs fn again, with backoff, while it fails with an error
// retryable says to retry, up to readyWait, which fn's context ends at.
func (b *Backend) retryNoproc(ctx context.Context, fn func(context.Context) error, retryable func(error) bool) error {
	ctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	return retry.Do(func() error { return fn(ctx) }, retry.RetryIf(retryable), retry.Context(ctx), retry.WrapContextErrorWithLastError(true),
		retry.Attempts(0), retry.DelayType(retry.BackOffDelay),
		retry.Delay(20*time.Millisecond), retry.MaxDelay(time.Second), retry.LastErrorOnly(true),
		retry.OnRetry(func(n uint, err error) {
			b.cfg.Logger.Debug("amqpbackend: queue not ready; retrying", "attempt", n+1, "err", err)
		}))
}

// dialSide opens a connection beside the Backend's own, for reads that
// may meet noproc. Through dialURL: any live node of a URL of several
// serves (a quorum queue serves reads from each of its members).
func (b *Backend) dialSide(ctx context.Context) (*amqp.Connection, error) {
	return b.dialURL(ctx, amqp.Config{Heartbeat: b.cfg.Heartbeat})
}

// onOwnConnection runs fn on a channel of a connection of its own, and
// runs it again on a new one, with backoff, while it fails with noproc, up
// to readyWait. fn must leave nothing half done when it fails: whatever it
// got unacknowledged goes back when the connection closes.
func (b *Backend) onOwnConnection(ctx context.Context, fn func(*amqp.Channel) error) error {
	return b.retryNoproc(ctx, func(ctx context.Context) error {
		conn, err := b.dialSide(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		return onChannel(conn, fn)
	}, isNoproc)
}

// awaitReady waits until the quorum queue name, just declared (or found
// declared), serves reads: a basic.get on the probe connection no longer
// fails with noproc. The queue is new or idle, so the get normally finds
// nothing; a message another process published meanwhile goes back
// unacknowledged. The probe is kept between calls, one call at a time: a
// dial costs about 4 ms here, the get a fraction of one, and a worker
// meets each of its queues once. A noproc (or a broker restart) closes
// it, and the next try dials again.
func (b *Backend) awaitReady(ctx context.Context, name string) error {
	b.probeMu.Lock()
	defer b.probeMu.Unlock()
	err := b.retryNoproc(ctx, func(ctx context.Context) error {
		if b.probe == nil || b.probe.IsClosed() {
			conn, err := b.dialSide(ctx)
			if err != nil {
				return err
			}
			b.probe = conn
		}
		return onChannel(b.probe, func(ch *amqp.Channel) error {
			_, _, err := ch.Get(name, false)
			return err
		})
	}, func(err error) bool { return isNoproc(err) || errors.Is(err, amqp.ErrClosed) })
	if err != nil {
		return fmt.Errorf("amqpbackend: queue %s not ready: %w", name, err)
	}
	return nil
}

// closeProbe closes the probe connection, at Close.
func (b *Backend) closeProbe() {
	b.probeMu.Lock()
	defer b.probeMu.Unlock()
	if b.probe != nil {
		_ = b.probe.Close()
		b.probe = nil
	}
}
