package flow

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// AdmitBatch decides, for the deliveries of one reserve at once, which may
// run now; limits gives each one's limits and the name they default to.
// Expiry is checked first, so an expired job takes nothing. Then each
// slot set is asked once for all its jobs' slots, in order, and each
// bucket once for all its jobs' tokens (the queue's bucket, then the
// task's); a job refused by a bucket gives back the slot it took. A batch
// costs a limiter call per slot set and bucket, not per job.
func (g *Gate) AdmitBatch(ctx context.Context, recs []*job.Record, limits func(*job.Record) (Limits, string)) []Verdict {
	now := g.clock.Now()
	b := &batch{g: g, recs: recs, now: now, ovs: g.ov.get(ctx, now), out: make([]Verdict, len(recs)),
		lims: make([]Limits, len(recs)), names: make([]string, len(recs))}
	for i, r := range recs {
		if b.out[i].Err = Expired(r, now); b.out[i].Err == nil {
			b.lims[i], b.names[i] = limits(r)
		}
	}
	b.acquire(ctx)
	for stage := 0; b.take(ctx, stage); stage++ {
	}
	b.giveBack(ctx)
	return b.out
}

// batch is one AdmitBatch call's state, by delivery index.
type batch struct {
	g     *Gate
	recs  []*job.Record
	now   time.Time
	ovs   *overrideSet // the overrides in force
	out   []Verdict
	lims  []Limits
	names []string
}

// group collects the deliveries that share a slot set or a bucket, in the
// order they first appear.
type group[L any] struct {
	limit L
	key   string // the jobs' key, for HeldBackError
	idx   []int
}

func addTo[L any](m map[string]*group[L], order *[]string, id string, limit L, key string, i int) {
	if m[id] == nil {
		m[id] = &group[L]{limit: limit, key: key}
		*order = append(*order, id)
	}
	m[id].idx = append(m[id].idx, i)
}

// acquire asks each slot set once for the slots of its deliveries.
func (b *batch) acquire(ctx context.Context) {
	sets := map[string]*group[ConcurrencyLimit]{}
	var order []string
	for i, r := range b.recs {
		c := b.lims[i].Concurrency
		if b.out[i].Err != nil || c == nil {
			continue
		}
		cl, err := c.withDefaults(b.names[i])
		if err != nil {
			b.out[i].Err = err
			continue
		}
		cl, _ = b.ovs.concurrency(cl)
		key := cl.Key(r)
		id := "conc/" + cl.Name + "/" + key
		addTo(sets, &order, id, cl, key, i)
		b.out[i].Ticket = Ticket{g: b.g, name: cl.Name, key: id, holder: r.ID + "/" + r.Lease.Token, limit: cl.Limit}
	}
	ps := make([]backends.AcquireSlotsParams, len(order))
	for n, id := range order {
		s := sets[id]
		ps[n] = backends.AcquireSlotsParams{Key: id, Limit: s.limit.Limit, Now: b.now}
		for _, i := range s.idx {
			ps[n].Holders = append(ps[n].Holders, b.out[i].Ticket.holder)
			// Leases of one reserve end together; the latest covers all.
			if exp := b.recs[i].Lease.ExpiresAt; exp.After(ps[n].ExpiresAt) {
				ps[n].ExpiresAt = exp
			}
		}
	}
	if len(ps) == 0 {
		return
	}
	granted, err := acquireMany(ctx, b.g.l, ps)
	for n, id := range order {
		s := sets[id]
		took := 0
		for _, i := range s.idx {
			switch {
			case err != nil:
				b.out[i] = Verdict{Err: fmt.Errorf("concurrency limit %s: %w", s.limit.Name, err)}
			case !slices.Contains(granted[n], b.out[i].Ticket.holder):
				until := b.now.Add(s.limit.Backoff)
				b.out[i] = Verdict{Err: &HeldBackError{Limit: s.limit.Name, Key: s.key, Until: until}}
				b.g.use.heldBack(concState(s.limit), until, b.now)
			default:
				took++
			}
		}
		if took > 0 {
			b.g.use.tookSlots(concState(s.limit), took)
		}
	}
}

// take asks each bucket of the stage-th rate limit once for its
// deliveries' tokens, and reports whether any delivery has such a limit.
func (b *batch) take(ctx context.Context, stage int) bool {
	buckets := map[string]*group[RateLimit]{}
	var order []string
	staged := false
	for i, r := range b.recs {
		if len(b.lims[i].Rates) <= stage {
			continue
		}
		staged = true
		if b.out[i].Err != nil {
			continue
		}
		rl, err := b.lims[i].Rates[stage].withDefaults(b.names[i])
		if err != nil {
			b.out[i].Err = err
			continue
		}
		rl, _ = b.ovs.rate(rl)
		key := ""
		if rl.Key != nil {
			key = rl.Key(r)
		}
		addTo(buckets, &order, "rate/"+rl.Name+"/"+key, rl, key, i)
	}
	ps := make([]backends.TakeTokensParams, len(order))
	for n, id := range order {
		bk := buckets[id]
		ps[n] = backends.TakeTokensParams{Key: id, Limit: bk.limit.Limit, Per: bk.limit.Per, Burst: bk.limit.Burst, Count: len(bk.idx), Now: b.now}
	}
	if len(ps) == 0 {
		return staged
	}
	res, err := takeMany(ctx, b.g.l, ps)
	for n, id := range order {
		bk := buckets[id]
		rl := bk.limit
		if err == nil && res[n].Taken > 0 {
			b.g.use.tookTokens(rateState(rl), res[n].Taken, b.now)
		}
		for k, i := range bk.idx {
			switch {
			case err != nil:
				b.out[i].Err = fmt.Errorf("rate limit %s: %w", rl.Name, err)
			case k >= res[n].Taken:
				// Spread over one interval past the next token: held back
				// to one instant, every waiting job would come back for
				// each token and all but one be postponed again (a herd of
				// reserves per token). Spread, each comes back about once
				// per interval.
				hb := &HeldBackError{Limit: rl.Name, Key: bk.key, Until: res[n].NextAt.Add(rand.N(rl.Per)), Next: res[n].NextAt}
				b.out[i].Err = hb
				b.g.use.heldBack(rateState(rl), hb.Until, b.now)
			}
		}
	}
	return staged
}

// giveBack releases the slots of deliveries a bucket refused.
func (b *batch) giveBack(ctx context.Context) {
	var tickets []Ticket
	for i := range b.out {
		if t := b.out[i].Ticket; b.out[i].Err != nil && t.g != nil {
			tickets = append(tickets, t)
			b.out[i].Ticket = Ticket{}
		}
	}
	_ = b.g.Release(context.WithoutCancel(ctx), tickets)
}
