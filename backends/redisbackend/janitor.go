package redisbackend

import (
	"context"
	"fmt"

	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/backends/internal/tick"
)

// janitorBatch bounds the jobs one janitor script run touches per queue.
const janitorBatch = 1000

// reconcileBatch bounds the state-set members one Tidy checks against their
// job hashes per queue. The walk resumes where the last one stopped, so a
// queue of n jobs is covered every n/reconcileBatch runs while each run
// stays cheap at millions of jobs.
const reconcileBatch = 500

// janitorLoop runs the janitor every JanitorEvery while it holds a lock
// that expires with the interval, so one client in the cluster does it per
// interval whatever the number of processes, and another takes over at once
// when that one dies.
func (b *Backend) janitorLoop() {
	defer b.bg.Done()
	tick.Janitor(b.gate.Closing(), b.cfg.JanitorEvery, b.cfg.Logger, "redisbackend", func(ctx context.Context) error {
		ok, err := b.rdb.SetNX(ctx, b.cfg.Prefix+":janitor", "1", b.cfg.JanitorEvery).Result()
		if err != nil || !ok {
			return err
		}
		return b.Tidy(ctx)
	})
}

// Tidy runs the janitor's work once on every queue: recover expired
// leases, promote due jobs, prune finished jobs past their retention, and
// check the next reconcileBatch members of the state sets against the job
// hashes, fixing (and logging) what drifted.
func (b *Backend) Tidy(ctx context.Context) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	queues, err := b.queues(ctx)
	if err != nil {
		return err
	}
	now := b.cfg.Clock.Now().UnixMilli()
	for _, q := range queues {
		budget := reconcileBatch
		for {
			v, err := b.s.janitor.Run(ctx, b.rdb, []string{b.base(q)}, now, janitorBatch, record.KeepMillis(b.cfg.KeepDead), budget).Slice()
			if err != nil {
				return fmt.Errorf("redisbackend: janitor of %s: %w", q, err)
			}
			if len(v) != 5 {
				return fmt.Errorf("redisbackend: janitor: unexpected reply of %d values", len(v))
			}
			b.reportBroken(q, v[2], v[3])
			moved, _ := v[4].([]any)
			for i := 0; i+2 < len(moved); i += 3 {
				b.cfg.Logger.Warn("redisbackend: job was in the wrong state set; moved to its state's",
					"queue", q, "id", moved[i], "set", moved[i+1], "state", moved[i+2])
			}
			budget = 0 // once per Tidy, however many rounds the rest takes
			if integer(v[0]) < janitorBatch && integer(v[1]) < janitorBatch {
				break
			}
		}
	}
	return nil
}

// reportBroken logs what a script found with no usable job hash behind it
// (see usable in lua/prelude.lua): strays, IDs whose hash is missing and
// whose index entries it removed, and corrupt, IDs whose hash names an
// unknown state and which it dead-lettered.
func (b *Backend) reportBroken(queue string, strays, corrupt any) {
	s, _ := strays.([]any)
	for _, id := range s {
		b.cfg.Logger.Warn("redisbackend: removed index entries of a job with no job hash", "queue", queue, "id", id)
	}
	c, _ := corrupt.([]any)
	for _, id := range c {
		b.cfg.Logger.Error("redisbackend: job with an unknown state dead-lettered", "queue", queue, "id", id)
	}
}
