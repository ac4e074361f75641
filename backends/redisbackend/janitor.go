package redisbackend

import (
	"context"
	"time"

	"github.com/conveyorhq/conveyor/backends/internal/tick"
)

// janitorBatch bounds the jobs one janitor script run touches per queue.
const janitorBatch = 1000

// janitorLoop runs the janitor every JanitorEvery while it holds a lock
// that expires with the interval, so one client in the cluster does it per
// interval whatever the number of processes, and another takes over at once
// when that one dies.
func (b *Backend) janitorLoop() {
	defer b.bg.Done()
	tick.Every(b.closing, b.cfg.JanitorEvery, func(ctx context.Context) {
		ok, err := b.rdb.SetNX(ctx, b.cfg.Prefix+":janitor", "1", b.cfg.JanitorEvery).Result()
		if err != nil || !ok {
			return
		}
		if err := b.Tidy(ctx); err != nil && ctx.Err() == nil {
			b.cfg.Logger.Warn("redisbackend: janitor", "err", err)
		}
	})
}

// Tidy runs the janitor's work once on every queue: recover expired
// leases, promote due jobs, prune finished jobs past their retention.
func (b *Backend) Tidy(ctx context.Context) error {
	queues, err := b.queues(ctx)
	if err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	for _, q := range queues {
		for {
			v, err := b.s.janitor.Run(ctx, b.rdb, []string{b.base(q)}, now, janitorBatch).Int64Slice()
			if err != nil {
				return err
			}
			if v[0] < janitorBatch && v[1] < janitorBatch {
				break
			}
		}
	}
	return nil
}
