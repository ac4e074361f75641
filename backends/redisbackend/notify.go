package redisbackend

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
)

// Listen implements backends.Notifier with Redis pub/sub. The scripts
// publish on "<base>:avail" when jobs become due and on "<base>:fin" (the
// IDs, one per line) when jobs finish, so an idle worker wakes within a
// round trip of an enqueue. A subscription that had to reconnect may have
// missed messages, so it is followed by a Changed event.
func (b *Backend) Listen(ctx context.Context, p backends.ListenParams) (<-chan backends.Event, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	// A listener that does not want finished jobs (a worker) does not
	// subscribe to them: one message less per completion for Redis to send.
	suffixes := []string{":avail", ":fin"}
	if len(p.Kinds) > 0 && !slices.Contains(p.Kinds, backends.JobFinished) {
		suffixes = suffixes[:1]
	}
	var ps *redis.PubSub
	var chans []string
	if len(p.Queues) == 0 {
		for _, s := range suffixes {
			chans = append(chans, b.cfg.Prefix+":{*}"+s)
		}
		ps = b.rdb.PSubscribe(ctx, chans...)
	} else {
		for _, q := range p.Queues {
			for _, s := range suffixes {
				chans = append(chans, b.base(q)+s)
			}
		}
		ps = b.rdb.Subscribe(ctx, chans...)
	}
	subs := len(chans)
	// Wait for the subscription itself, so an event published after Listen
	// returns is never missed.
	for confirmed := 0; confirmed < subs; {
		msg, err := ps.Receive(ctx)
		if err != nil {
			_ = ps.Close()
			return nil, fmt.Errorf("redisbackend: subscribing: %w", err)
		}
		if _, ok := msg.(*redis.Subscription); ok {
			confirmed++
		}
	}
	out := make(chan backends.Event, 64)
	go func() {
		defer close(out)
		defer ps.Close()
		stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
		defer stop()
		lastErr := false
		for {
			msg, err := ps.Receive(ctx)
			if ctx.Err() != nil {
				return
			}
			var evs []backends.Event
			switch m := msg.(type) {
			case *redis.Message:
				evs = b.events(m.Channel, m.Payload)
			case *redis.Subscription:
				// A resubscription after a reconnect: we may have missed events.
				if lastErr {
					evs = []backends.Event{{Kind: backends.Changed}}
					lastErr = false
				}
			}
			if err != nil {
				lastErr = true
				select { // back off a little; go-redis reconnects on the next Receive
				case <-ctx.Done():
					return
				case <-b.gate.Closing():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
			for _, ev := range evs {
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				default: // a slow listener loses hints, never blocks us
				}
			}
		}
	}()
	return out, nil
}

// events decodes one pub/sub message.
func (b *Backend) events(channel, payload string) []backends.Event {
	rest, ok := strings.CutPrefix(channel, b.cfg.Prefix+":{")
	if !ok {
		return nil
	}
	if q, ok := strings.CutSuffix(rest, "}:avail"); ok {
		return []backends.Event{{Kind: backends.JobsAvailable, Queue: q}}
	}
	q, ok := strings.CutSuffix(rest, "}:fin")
	if !ok {
		return nil
	}
	var evs []backends.Event
	for id := range strings.SplitSeq(payload, "\n") {
		evs = append(evs, backends.Event{Kind: backends.JobFinished, Queue: q, JobID: id})
	}
	return evs
}
