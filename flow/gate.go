package flow

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Limits are the limits one delivery passes before it runs: rate limits
// (a queue's and a task's) and at most one concurrency limit.
type Limits struct {
	Rates       []RateLimit
	Concurrency *ConcurrencyLimit
}

// Empty reports whether l limits nothing.
func (l Limits) Empty() bool { return len(l.Rates) == 0 && l.Concurrency == nil }

// HeldBackError says a limit holds a job back until Until. The worker
// postpones the job to then without using an attempt or a delivery. For a
// rate limit, Until is the next token's time plus a random part of the
// limit's interval, so that held-back jobs come back spread out.
type HeldBackError struct {
	Limit string // the limit's name
	Key   string // the key it counted the job under
	Until time.Time
	// Next is when the limit next admits a job (a rate limit's next
	// token); zero for a concurrency limit, which cannot tell.
	Next time.Time
}

func (e *HeldBackError) Error() string {
	return fmt.Sprintf("held back by limit %q (key %q) until %s", e.Limit, e.Key, e.Until.Format(time.RFC3339Nano))
}

// Gate admits deliveries through the limits held in one backend.
type Gate struct {
	l     backends.Limiter
	clock backends.Clock
}

// NewGate returns a gate on b's limits: b's own backends.Limiter, or one
// on its KVStore. A backend with neither gives an error wrapping
// job.ErrUnsupported. clock tells the time buckets refill by; nil is the
// system clock.
func NewGate(b backends.Backend, clock backends.Clock) (*Gate, error) {
	l, err := backends.LimiterFor(b)
	if err != nil {
		return nil, err
	}
	if clock == nil {
		clock = backends.SystemClock{}
	}
	return &Gate{l: l, clock: clock}, nil
}

// Limiter returns the limiter the gate uses, for inspection.
func (g *Gate) Limiter() backends.Limiter { return g.l }

// Ticket is what an admitted delivery holds: its concurrency slot, if it
// took one. The zero Ticket holds nothing.
type Ticket struct {
	g      *Gate
	key    string
	holder string
	limit  int
}

// Admit decides whether delivery rec may run now under lim, whose defaults
// are filled with name (the task's). It takes the concurrency slot first,
// then a token from each bucket, and gives the slot back if a bucket is
// empty. A job held back gets a *HeldBackError; an expired one an error
// wrapping ErrExpired, checked first so that an expired job takes no slot.
func (g *Gate) Admit(ctx context.Context, rec *job.Record, name string, lim Limits) (Ticket, error) {
	now := g.clock.Now()
	if err := Expired(rec, now); err != nil {
		return Ticket{}, err
	}
	var t Ticket
	if c := lim.Concurrency; c != nil {
		cl, err := c.withDefaults(name)
		if err != nil {
			return Ticket{}, err
		}
		key := cl.Key(rec)
		t = Ticket{g: g, key: "conc/" + cl.Name + "/" + key, holder: rec.ID + "/" + rec.Lease.Token, limit: cl.Limit}
		ok, err := g.l.AcquireSlot(ctx, backends.AcquireSlotParams{
			Key: t.key, Limit: cl.Limit, Holder: t.holder, ExpiresAt: rec.Lease.ExpiresAt, Now: now,
		})
		if err != nil {
			return Ticket{}, fmt.Errorf("concurrency limit %s: %w", cl.Name, err)
		}
		if !ok {
			return Ticket{}, &HeldBackError{Limit: cl.Name, Key: key, Until: now.Add(cl.Backoff)}
		}
	}
	for _, r := range lim.Rates {
		rl, err := r.withDefaults(name)
		if err == nil {
			err = g.take(ctx, rec, rl, now)
		}
		if err != nil {
			t.Release(context.WithoutCancel(ctx))
			return Ticket{}, err
		}
	}
	return t, nil
}

func (g *Gate) take(ctx context.Context, rec *job.Record, rl RateLimit, now time.Time) error {
	key := ""
	if rl.Key != nil {
		key = rl.Key(rec)
	}
	res, err := g.l.TakeToken(ctx, backends.TakeTokenParams{
		Key: "rate/" + rl.Name + "/" + key, Limit: rl.Limit, Per: rl.Per, Burst: rl.Burst, Now: now,
	})
	if err != nil {
		return fmt.Errorf("rate limit %s: %w", rl.Name, err)
	}
	if !res.OK {
		// Spread over one interval past the next token: held back to one
		// instant, every waiting job would come back for each token and
		// all but one be postponed again (a herd of reserves per token).
		// Spread, each comes back about once per interval.
		return &HeldBackError{Limit: rl.Name, Key: key, Until: res.NextAt.Add(rand.N(rl.Per)), Next: res.NextAt}
	}
	return nil
}

// Renew moves the ticket's slot expiry to expiresAt, the job's extended
// lease: a worker's heartbeat keeps its slots as it keeps its leases.
func (t Ticket) Renew(ctx context.Context, expiresAt time.Time) error {
	if t.g == nil {
		return nil
	}
	_, err := t.g.l.AcquireSlot(ctx, backends.AcquireSlotParams{
		Key: t.key, Limit: t.limit, Holder: t.holder, ExpiresAt: expiresAt, Now: t.g.clock.Now(),
	})
	return err
}

// Release gives the ticket's slot back. Errors are left to the slot's
// expiry: a slot not released is free when the lease would have ended.
func (t Ticket) Release(ctx context.Context) {
	if t.g == nil {
		return
	}
	_ = t.g.l.ReleaseSlot(ctx, backends.ReleaseSlotParams{Key: t.key, Holder: t.holder, Now: t.g.clock.Now()})
}
