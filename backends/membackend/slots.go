package membackend

import (
	"context"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.SlotReserver = (*Backend)(nil)

// ReserveSlots implements backends.SlotReserver. The running jobs are
// counted under b.mu, which every lease takes, so concurrent calls see
// each other's. Like PostgreSQL's, a call looks at up to p.Limit due jobs
// (leased or held back; one it dead-letters is not counted), so a backlog
// of one full key is postponed a reserve's worth at a time rather than
// scanned whole.
func (b *Backend) ReserveSlots(ctx context.Context, p backends.ReserveSlotsParams) (backends.ReserveSlotsResult, error) {
	if err := p.Validate(); err != nil {
		return backends.ReserveSlotsResult{}, err
	}
	var res backends.ReserveSlotsResult
	var running map[[2]string]int // by rule name and key, once a rule applies
	next := nextReady
	if p.Fair {
		next = fairPick(p.ReserveParams)
	}
	looked := 0
	recs, err := b.reserve(ctx, p.ReserveParams, func(q *queueState) *entry {
		now := b.cfg.Clock.Now()
		for looked < p.Limit {
			e := next(q)
			if e == nil {
				return nil
			}
			r, ok := p.RuleOf(e.rec.Task)
			if e.rec.MaxDeliveries > 0 && e.rec.Deliveries >= e.rec.MaxDeliveries {
				return e // going to Dead: not one of the jobs the call looks at
			}
			looked++
			if !ok {
				return e // unlimited
			}
			if running == nil {
				running = b.runningByKey(p, now)
			}
			k := [2]string{r.Name, e.rec.Headers[p.KeyHeader]}
			if running[k] < r.Limit {
				running[k]++
				return e
			}
			e.rec.RunAt = now.Add(r.Backoff)
			b.setState(e, job.Scheduled, now)
			res.HeldBack = append(res.HeldBack, clone(&e.rec))
		}
		return nil
	})
	res.Jobs = recs
	return res, err
}

// runningByKey counts the jobs running under a live lease by p's rule
// names and their keys, over every queue. The caller holds b.mu.
func (b *Backend) runningByKey(p backends.ReserveSlotsParams, now time.Time) map[[2]string]int {
	n := map[[2]string]int{}
	for _, q := range b.queues {
		for _, it := range q.running {
			e := it.e
			if !it.live() || e.rec.State != job.Running || !e.rec.Lease.ExpiresAt.After(now) {
				continue
			}
			if r, ok := p.RuleOf(e.rec.Task); ok {
				n[[2]string{r.Name, e.rec.Headers[p.KeyHeader]}]++
			}
		}
	}
	return n
}
