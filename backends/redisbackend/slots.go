package redisbackend

import (
	"context"
	"fmt"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.SlotReserver = (*Backend)(nil)

// ReserveSlots implements backends.SlotReserver in reserve.lua's run: a
// job leased under a rule joins its key's slot set, which its outcome,
// retry or lease expiry leaves (the prelude's slot and unslot), so a
// limit costs a few commands inside scripts that run anyway, not a
// round trip. On Redis Cluster it answers job.ErrUnsupported: a limit
// counts the jobs of every queue, whose keys live on other nodes than the
// queue a script runs on, so the worker holds the limits with the
// Limiter's slots instead.
func (b *Backend) ReserveSlots(ctx context.Context, p backends.ReserveSlotsParams) (backends.ReserveSlotsResult, error) {
	if err := p.Validate(); err != nil {
		return backends.ReserveSlotsResult{}, err
	}
	if err := b.gate.Valid(ctx, p.ReserveParams); err != nil {
		return backends.ReserveSlotsResult{}, err
	}
	v := variant{fair: p.Fair}
	if len(p.Rules) == 0 {
		return b.reserveAll(ctx, p.ReserveParams, v)
	}
	if b.cluster {
		return backends.ReserveSlotsResult{}, fmt.Errorf("redisbackend: concurrency rules on a cluster: %w", job.ErrUnsupported)
	}
	v.slots = []any{b.cfg.Prefix + ":slot:", p.KeyHeader}
	for _, r := range p.Rules {
		v.slots = append(v.slots, r.Task, r.Name, r.Limit, r.Backoff.Milliseconds())
	}
	return b.reserveAll(ctx, p.ReserveParams, v)
}
