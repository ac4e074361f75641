package flow

import (
	"context"
	"fmt"
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
	ov    overrides
	use   usage
}

// NewGate returns a gate on b's limits: b's own backends.Limiter, or one
// on its KVStore. A backend with neither gives an error wrapping
// job.ErrUnsupported. The gate applies the overrides kept in b's KVStore
// (SetOverride), if it has one. clock tells the time buckets refill by; nil is the
// system clock.
func NewGate(b backends.Backend, clock backends.Clock) (*Gate, error) {
	l, err := backends.LimiterFor(b)
	if err != nil {
		return nil, err
	}
	if clock == nil {
		clock = backends.SystemClock{}
	}
	g := &Gate{l: l, clock: clock}
	g.ov.kv, _ = b.(backends.KVStore)
	return g, nil
}

// Limiter returns the limiter the gate uses, for inspection.
func (g *Gate) Limiter() backends.Limiter { return g.l }

// Ticket is what an admitted delivery holds: its concurrency slot, if it
// took one. The zero Ticket holds nothing.
type Ticket struct {
	g      *Gate
	name   string // the limit's
	key    string
	holder string
	limit  int
	// counted: the slot is the backend's count of running jobs
	// (Gate.Reserved), with nothing to renew or give back.
	counted bool
}

// Verdict is the gate's answer for one delivery: run it holding Ticket
// (Err nil), or not: a *HeldBackError, an error wrapping ErrExpired, or
// the limiter's failure.
type Verdict struct {
	Ticket Ticket
	Err    error
}

// Admit decides whether delivery rec may run now under lim, whose names
// default to name (the task's); see AdmitBatch.
func (g *Gate) Admit(ctx context.Context, rec *job.Record, name string, lim Limits) (Ticket, error) {
	v := g.AdmitBatch(ctx, []*job.Record{rec}, func(*job.Record) (Limits, string) { return lim, name })[0]
	return v.Ticket, v.Err
}

// Renew moves the slot expiry of tickets to expiresAt, the jobs' extended
// leases: a worker's heartbeat keeps its slots as it keeps its leases,
// with one limiter call for all.
func (g *Gate) Renew(ctx context.Context, tickets []Ticket, expiresAt time.Time) error {
	if len(tickets) == 0 {
		return nil
	}
	keys, holders := bySet(tickets)
	ps := make([]backends.AcquireSlotsParams, len(keys))
	for n, k := range keys {
		ps[n] = backends.AcquireSlotsParams{Key: k.key, Limit: k.limit, Holders: holders[n], ExpiresAt: expiresAt, Now: g.clock.Now()}
	}
	_, err := acquireMany(ctx, g.l, ps)
	return err
}

// Release gives the tickets' slots back, with one limiter call for all. A
// slot not released (the error) is free when its lease would have ended.
func (g *Gate) Release(ctx context.Context, tickets []Ticket) error {
	if len(tickets) == 0 {
		return nil
	}
	g.use.gaveBack(tickets)
	keys, holders := bySet(tickets)
	ps := make([]backends.ReleaseSlotsParams, len(keys))
	for n, k := range keys {
		ps[n] = backends.ReleaseSlotsParams{Key: k.key, Holders: holders[n], Now: g.clock.Now()}
	}
	return releaseMany(ctx, g.l, ps)
}

// bySet groups tickets by slot set, in the order they first appear.
func bySet(tickets []Ticket) (sets []Ticket, holders [][]string) {
	at := map[string]int{}
	for _, t := range tickets {
		if t.g == nil || t.counted {
			continue
		}
		n, ok := at[t.key]
		if !ok {
			n = len(sets)
			at[t.key] = n
			sets = append(sets, Ticket{key: t.key, limit: t.limit})
			holders = append(holders, nil)
		}
		holders[n] = append(holders[n], t.holder)
	}
	return sets, holders
}

// Release gives the ticket's slot back. Errors are left to the slot's
// expiry: a slot not released is free when the lease would have ended.
func (t Ticket) Release(ctx context.Context) {
	if t.g == nil {
		return
	}
	_ = t.g.Release(ctx, []Ticket{t})
}
