package amqpbackend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.Pauser = (*StoredBackend)(nil)

// pauseTTL is how long a Reserve trusts its last look at a queue's pause
// flag: other processes see a pause or resume within it, this one at once.
const pauseTTL = 500 * time.Millisecond

// pauses caches the store's pause flags for Reserve.
type pauses struct {
	mu   sync.Mutex
	seen map[string]pauseSeen
}

type pauseSeen struct {
	paused bool
	at     time.Time
}

func (s store) pauseKey(q string) string { return s.prefix + "/paused/" + q }
func (s store) pausePrefix() string      { return s.prefix + "/paused/" }

// PauseQueue implements backends.Pauser with a flag in the store: Reserve
// hands out nothing from a paused queue; its consumer keeps what it
// prefetched, and running jobs carry on.
func (b *StoredBackend) PauseQueue(ctx context.Context, p backends.PauseQueueParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	_, err := b.st.kv.PutKV(ctx, backends.PutKVParams{Key: b.st.pauseKey(p.Queue), Value: []byte("paused")})
	if err != nil && !errors.Is(err, job.ErrConflict) { // a conflict: paused already
		return fmt.Errorf("amqpbackend: pause %s: %w", p.Queue, err)
	}
	if err := b.st.listQueue(ctx, p.Queue); err != nil { // QueueStats lists paused queues
		return err
	}
	b.pauses.remember(p.Queue, true)
	return nil
}

// ResumeQueue implements backends.Pauser.
func (b *StoredBackend) ResumeQueue(ctx context.Context, p backends.PauseQueueParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	if err := b.st.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: b.st.pauseKey(p.Queue)}); err != nil {
		return fmt.Errorf("amqpbackend: resume %s: %w", p.Queue, err)
	}
	b.pauses.remember(p.Queue, false)
	b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: p.Queue})
	return nil
}

func (p *pauses) remember(q string, paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[string]pauseSeen{}
	}
	p.seen[q] = pauseSeen{paused, time.Now()}
}

// paused reports whether queue q is paused, from the store at most every
// pauseTTL. Without a store no queue is.
func (b *Backend) paused(ctx context.Context, q string) (bool, error) {
	if b.st == nil {
		return false, nil
	}
	b.pauses.mu.Lock()
	s, ok := b.pauses.seen[q]
	b.pauses.mu.Unlock()
	if ok && time.Since(s.at) < pauseTTL {
		return s.paused, nil
	}
	_, err := b.st.kv.GetKV(ctx, backends.GetKVParams{Key: b.st.pauseKey(q)})
	if err != nil && !errors.Is(err, job.ErrNotFound) {
		return false, fmt.Errorf("amqpbackend: pause flag of %s: %w", q, err)
	}
	b.pauses.remember(q, err == nil)
	return err == nil, nil
}

// pausedNow reports whether queue q is paused, from the store.
func (b *StoredBackend) pausedNow(ctx context.Context, q string) (bool, error) {
	_, err := b.st.kv.GetKV(ctx, backends.GetKVParams{Key: b.st.pauseKey(q)})
	if err != nil && !errors.Is(err, job.ErrNotFound) {
		return false, fmt.Errorf("amqpbackend: pause flag of %s: %w", q, err)
	}
	return err == nil, nil
}

// listPaused lists the paused queues among the queues, for a store paused
// in before the list was kept.
func (b *Backend) listPaused(ctx context.Context) error {
	kvs, err := b.st.kv.ListKV(ctx, backends.ListKVParams{Prefix: b.st.pausePrefix()})
	if err != nil {
		return fmt.Errorf("amqpbackend: paused queues: %w", err)
	}
	for _, kv := range kvs {
		if err := b.st.listQueue(ctx, strings.TrimPrefix(kv.Key, b.st.pausePrefix())); err != nil {
			return err
		}
	}
	return nil
}
