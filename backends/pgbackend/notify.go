package pgbackend

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/tick"
)

// Listen implements backends.Notifier. One connection per Backend LISTENs
// on the schema's channel, which the jobs table's triggers notify when
// jobs become due and when they finish (NOTIFY is delivered at commit), and
// fans the events out to every listener. With Config.NoListen, or while the
// connection is down, listeners get a Changed event every PollEvery.
func (b *Backend) Listen(ctx context.Context, p backends.ListenParams) (<-chan backends.Event, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	b.listening.Do(func() {
		ready := make(chan struct{})
		b.bg.Add(1)
		go b.listenLoop(ready)
		<-ready
	})
	return b.hub.Listen(ctx, p)
}

// listenLoop keeps the LISTEN connection up until Close. It closes ready
// once the first LISTEN has been tried, so Listen returns only when events
// can no longer be missed (or polling has begun).
func (b *Backend) listenLoop(ready chan struct{}) {
	defer b.bg.Done()
	ctx, cancel := tick.Until(b.gate.Closing())
	defer cancel()
	signalReady := func() {
		select {
		case <-ready:
		default:
			close(ready)
		}
	}
	defer signalReady()
	reconnected := false
	for ctx.Err() == nil {
		if !b.cfg.NoListen {
			if err := b.listenOnce(ctx, signalReady, reconnected); err != nil && ctx.Err() == nil {
				b.cfg.Logger.Warn("pgbackend: LISTEN connection lost; polling until it is back", "err", err)
			}
			reconnected = true
		}
		signalReady()
		// Polling: with NoListen for good, else until the reconnect.
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.cfg.PollEvery):
			b.hub.Publish(backends.Event{Kind: backends.Changed})
		}
	}
}

// listenOnce LISTENs on one connection and publishes what arrives until the
// connection fails or ctx ends.
func (b *Backend) listenOnce(ctx context.Context, listening func(), reconnected bool) error {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection is ours for good: never give it back to the pool.
	c := conn.Hijack()
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{channelName(b.cfg.Schema)}.Sanitize()); err != nil {
		return err
	}
	listening()
	if reconnected {
		b.hub.Publish(backends.Event{Kind: backends.Changed}) // we may have missed some
	}
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		for _, ev := range events(n.Payload) {
			b.hub.Publish(ev)
		}
	}
}

// events decodes a notification: "a:<queue>" or "f:<queue>:<id>,<id>...".
// Queue names may hold ':' but IDs never hold ','; the queue is everything
// up to the last ':' before the IDs.
func events(payload string) []backends.Event {
	kind, rest, _ := strings.Cut(payload, ":")
	switch kind {
	case "a":
		return []backends.Event{{Kind: backends.JobsAvailable, Queue: rest}}
	case "f":
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			return nil
		}
		var evs []backends.Event
		for id := range strings.SplitSeq(rest[i+1:], ",") {
			evs = append(evs, backends.Event{Kind: backends.JobFinished, Queue: rest[:i], JobID: id})
		}
		return evs
	}
	return nil
}
