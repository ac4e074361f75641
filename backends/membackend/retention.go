package membackend

import (
	"container/heap"
	"context"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// expire files a job that has just finished, as heap item it, under the
// end of its retention. A job holding its unique key past that is kept
// until the key's window closes, as the other backends do, so that pruning
// never lets a duplicate in.
func (b *Backend) expire(it item, now time.Time) {
	keep := b.cfg.KeepDone
	if it.e.rec.State == job.Dead {
		keep = b.cfg.KeepDead
	}
	if keep < 0 {
		return
	}
	at := now.Add(keep)
	if it.e.rec.UniqueUntil.After(at) {
		at = it.e.rec.UniqueUntil
	}
	heap.Push(&b.expiring, timedItem{item: it, at: at.UnixNano()})
}

// prune deletes the finished jobs whose retention ended by now and returns
// how many, then forgets idle fair groups (pruneGroups). A job replayed or
// deleted since it finished has a newer version than its heap item, which
// is skipped. The caller holds b.mu.
func (b *Backend) prune(now time.Time) int {
	n := 0
	b.expiring.popDue(now.UnixNano(), func(e *entry) {
		b.remove(e)
		n++
	})
	for _, q := range b.queues {
		q.pruneGroups()
	}
	return n
}

// pruneDue prunes if the janitor is due (Config.JanitorEvery). The caller
// holds b.mu.
func (b *Backend) pruneDue(now time.Time) int {
	if b.cfg.JanitorEvery < 0 || now.Before(b.nextPrune) {
		return 0
	}
	b.nextPrune = now.Add(b.cfg.JanitorEvery)
	return b.prune(now)
}

func (b *Backend) logPruned(n int) {
	if n > 0 {
		b.cfg.Logger.Debug("membackend: janitor pruned finished jobs past their retention", "jobs", n)
	}
}

// Tidy prunes the finished jobs past their retention now, whether or not
// the janitor is due; Enqueue does it on its own every JanitorEvery.
func (b *Backend) Tidy(ctx context.Context) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	n := b.prune(b.cfg.Clock.Now())
	b.mu.Unlock()
	b.logPruned(n)
	return nil
}
