package amqpbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// The store keeps, next to the jobs, how many jobs each queue has in each
// state, so that QueueStats reads a few counter keys instead of every job.
// A KVStore changes one key at a time: a job's change and its count's
// cannot be one atomic write. Each change is therefore counted in memory
// right after the job's write succeeded, and the counts are added to the
// counter keys (compare-and-set) every countFlush, and before this
// process's QueueStats. A process that dies between the two loses up to a
// countFlush of its counts; the janitor recounts from the jobs every
// Config.JanitorEvery (and once when a store has no counts yet).
//
// A finished job's record expires with its retention, silently, so its
// count must too: finished jobs are counted in buckets by when they
// expire, and a bucket's count is dropped at its end: at most 1/256 of the
// retention after its jobs expired.

// countFlush is how often counts go to the store.
const countFlush = 100 * time.Millisecond

// countKey names one counter: a queue's jobs in a state, and for finished
// states, those expiring by until (Unix nanoseconds; 0: never).
type countKey struct {
	queue string
	state job.State
	until int64
}

// counts holds the changes counted and not yet in the store.
type counts struct {
	mu      sync.Mutex
	pending map[countKey]int
	flushMu sync.Mutex // one flush at a time
	warned  time.Time  // of the last failed flush, to warn at most every 10s
}

func (c *counts) add(k countKey, delta int) {
	c.mu.Lock()
	if c.pending == nil {
		c.pending = map[countKey]int{}
	}
	c.pending[k] += delta
	if c.pending[k] == 0 {
		delete(c.pending, k)
	}
	c.mu.Unlock()
}

func (s store) countKey(q string) string { return s.prefix + "/count/" + q }
func (s store) queuesKey() string        { return s.prefix + "/queues" }
func (s store) countedKey() string       { return s.prefix + "/counted" }

// countOf is the counter d counts in.
func (s store) countOf(d *doc) countKey {
	k := countKey{queue: d.Queue, state: d.State}
	if exp := s.expiry(d); !exp.IsZero() {
		keep := s.keepDone
		if d.State == job.Dead {
			keep = s.keepDead
		}
		grain := max(int64(keep/256), int64(time.Millisecond))
		k.until = (exp.UnixNano() + grain - 1) / grain * grain
	}
	return k
}

// moved counts a change of job from as it was to to as it is (nil: absent).
func (s store) moved(from, to *doc) {
	var a, b countKey
	if from != nil {
		a = s.countOf(from)
	}
	if to != nil {
		b = s.countOf(to)
	}
	if a == b {
		return
	}
	if from != nil {
		s.cnt.add(a, -1)
	}
	if to != nil {
		s.cnt.add(b, 1)
	}
}

// queueCounts is one queue's counter key: its jobs by state, and by when
// they expire (Unix nanoseconds; 0: never). A KVStore lists keys by prefix
// with a scan of every key in some stores (SQLite), so each queue keeps
// one key, found through the list of queues, and QueueStats reads a few
// keys whatever the number of jobs.
type queueCounts map[job.State]map[int64]int

// live returns the counts of jobs not expired at now, by state.
func (c queueCounts) live(now time.Time) map[job.State]int {
	out := map[job.State]int{}
	for st, byUntil := range c {
		for until, n := range byUntil {
			if until == 0 || until > now.UnixNano() {
				out[st] += n
			}
		}
		if out[st] <= 0 {
			delete(out, st)
		}
	}
	return out
}

// tidy drops expired buckets and zero counts.
func (c queueCounts) tidy(now time.Time) {
	for st, byUntil := range c {
		for until, n := range byUntil {
			if n == 0 || (until != 0 && until <= now.UnixNano()) {
				delete(byUntil, until)
			}
		}
		if len(byUntil) == 0 {
			delete(c, st)
		}
	}
}

// readCounts returns queue q's counter key and its version (0: absent).
func (s store) readCounts(ctx context.Context, q string) (queueCounts, int64, error) {
	kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: s.countKey(q)})
	if errors.Is(err, job.ErrNotFound) {
		return queueCounts{}, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("amqpbackend: counts of %s: %w", q, err)
	}
	c := queueCounts{}
	if err := json.Unmarshal(kv.Value, &c); err != nil {
		return nil, 0, fmt.Errorf("amqpbackend: counts of %s: %w", q, err)
	}
	return c, kv.Version, nil
}

// writeCounts writes queue q's counts if its key is at version v (0:
// absent, and then lists the queue).
func (s store) writeCounts(ctx context.Context, q string, c queueCounts, v int64) error {
	c.tidy(time.Now())
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("amqpbackend: counts of %s: %w", q, err)
	}
	if _, err := s.kv.PutKV(ctx, backends.PutKVParams{Key: s.countKey(q), Value: b, IfVersion: v}); err != nil {
		if errors.Is(err, job.ErrConflict) {
			return err
		}
		return fmt.Errorf("amqpbackend: counts of %s: %w", q, err)
	}
	if v == 0 {
		return s.listQueue(ctx, q)
	}
	return nil
}

// queues returns the queues that have counts or were paused.
func (s store) queues(ctx context.Context) ([]string, int64, error) {
	kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: s.queuesKey()})
	if errors.Is(err, job.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("amqpbackend: queues: %w", err)
	}
	var qs []string
	if err := json.Unmarshal(kv.Value, &qs); err != nil {
		return nil, 0, fmt.Errorf("amqpbackend: queues: %w", err)
	}
	return qs, kv.Version, nil
}

// listQueue adds q to the list of queues.
func (s store) listQueue(ctx context.Context, q string) error {
	for {
		qs, v, err := s.queues(ctx)
		if err != nil || slices.Contains(qs, q) {
			return err
		}
		b, _ := json.Marshal(append(qs, q))
		_, err = s.kv.PutKV(ctx, backends.PutKVParams{Key: s.queuesKey(), Value: b, IfVersion: v})
		if !errors.Is(err, job.ErrConflict) {
			if err != nil {
				return fmt.Errorf("amqpbackend: queues: %w", err)
			}
			return nil
		}
	}
}

// flushCounts adds the pending counts to the queues' counter keys. What
// it could not write stays pending.
func (s store) flushCounts(ctx context.Context) error {
	s.cnt.flushMu.Lock()
	defer s.cnt.flushMu.Unlock()
	s.cnt.mu.Lock()
	pending := s.cnt.pending
	s.cnt.pending = nil
	s.cnt.mu.Unlock()
	byQueue := map[string][]countKey{}
	for k := range pending {
		byQueue[k.queue] = append(byQueue[k.queue], k)
	}
	var firstErr error
	for q, keys := range byQueue {
		if err := s.addCounts(ctx, q, keys, pending); err != nil {
			for _, k := range keys {
				s.cnt.add(k, pending[k])
			}
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// addCounts adds the deltas of keys, all of queue q, to its counter key.
func (s store) addCounts(ctx context.Context, q string, keys []countKey, delta map[countKey]int) error {
	for {
		c, v, err := s.readCounts(ctx, q)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if c[k.state] == nil {
				c[k.state] = map[int64]int{}
			}
			c[k.state][k.until] += delta[k]
		}
		err = s.writeCounts(ctx, q, c, v)
		if !errors.Is(err, job.ErrConflict) {
			return err
		}
	}
}

// recount sets the counter keys to what the jobs say, from a scan of
// every job. It cannot stop other processes' changes meanwhile, so it
// reads the counters before the scan and, once every change the scan may
// have seen has been flushed (settle, a few countFlush), writes a queue's
// counts only if their key did not change since that read: a key that did
// is being kept up by a live process, and is left for the next recount.
func (b *Backend) recount(ctx context.Context, settle time.Duration) error {
	s := b.st
	if err := s.flushCounts(ctx); err != nil {
		return err
	}
	qs, _, err := s.queues(ctx)
	if err != nil {
		return err
	}
	type seen struct {
		c queueCounts
		v int64
	}
	have := map[string]seen{}
	for _, q := range qs {
		c, v, err := s.readCounts(ctx, q)
		if err != nil {
			return err
		}
		have[q] = seen{c, v}
	}
	depthVer, depthWas := map[string]int64{}, map[string]int{} // each queue's depth counter before the scan
	for _, q := range qs {
		n, v, err := s.readDepth(ctx, q)
		if err != nil {
			return err
		}
		depthVer[q], depthWas[q] = v, n
	}
	docs, err := b.scan(ctx)
	if err != nil {
		return err
	}
	depthWant := map[string]int{}
	for _, d := range docs {
		if d.Bounded && !d.State.Finished() {
			depthWant[d.Queue]++
		}
	}
	want := map[string]queueCounts{}
	for q := range have {
		want[q] = queueCounts{}
	}
	for _, d := range docs {
		k := s.countOf(d)
		if want[k.queue] == nil {
			want[k.queue] = queueCounts{}
		}
		if want[k.queue][k.state] == nil {
			want[k.queue][k.state] = map[int64]int{}
		}
		want[k.queue][k.state][k.until]++
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	now := time.Now()
	fixed := 0
	for q, c := range want {
		h := have[q]
		if h.c != nil && maps.Equal(h.c.live(now), c.live(now)) {
			continue
		}
		err := s.writeCounts(ctx, q, c, h.v)
		if err != nil && !errors.Is(err, job.ErrConflict) {
			return err
		}
		if err == nil {
			fixed++
		}
	}
	// A depth counter off from the jobs (a process died between finishing
	// a job and giving back its slot) is set to what they say, unless a
	// live process changed it meanwhile: a leaked slot would otherwise
	// hold a bounded queue below its bound for good.
	for q, was := range depthWas {
		if depthWant[q] == was {
			continue
		}
		err := s.setDepth(ctx, q, depthWant[q], depthVer[q])
		if err != nil && !errors.Is(err, job.ErrConflict) {
			return err
		}
		if err == nil {
			b.cfg.Logger.Warn("amqpbackend: depth counter repaired from the jobs", "queue", q, "was", was, "now", depthWant[q])
		}
	}
	if fixed > 0 {
		b.cfg.Logger.Info("amqpbackend: recounted the store's jobs; counts repaired", "queues", fixed)
	}
	return nil
}

// keepCounts flushes counts every countFlush and recounts every
// Config.JanitorEvery, until Close; then it flushes once more.
func (b *Backend) keepCounts() {
	defer b.bg.Done()
	flush := time.NewTicker(countFlush)
	defer flush.Stop()
	var recount <-chan time.Time
	if b.cfg.JanitorEvery > 0 {
		t := time.NewTicker(b.cfg.JanitorEvery)
		defer t.Stop()
		recount = t.C
	}
	for {
		select {
		case <-b.closing:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := b.st.flushCounts(ctx); err != nil {
				b.cfg.Logger.Warn("amqpbackend: counts not written to the store at close; the next recount repairs them", "err", err)
			}
			return
		case <-flush.C:
			err := b.st.flushCounts(b.ctx)
			if err != nil && b.ctx.Err() == nil && time.Since(b.st.cnt.warned) > 10*time.Second { // closing: flushed below
				b.st.cnt.warned = time.Now()
				b.cfg.Logger.Warn("amqpbackend: counts not written to the store; retrying", "err", err)
			}
		case <-recount:
			if err := b.recount(b.ctx, 10*countFlush); err != nil && b.ctx.Err() == nil {
				b.cfg.Logger.Warn("amqpbackend: recount failed", "err", err)
			}
		}
	}
}

// countFirst recounts a store that has no counts yet (new, or written by
// a version of this package that kept none), once.
func (b *Backend) countFirst(ctx context.Context) error {
	_, err := b.st.kv.GetKV(ctx, backends.GetKVParams{Key: b.st.countedKey()})
	if !errors.Is(err, job.ErrNotFound) {
		return err
	}
	if err := b.listPaused(ctx); err != nil {
		return err
	}
	if err := b.recount(ctx, 0); err != nil {
		return err
	}
	_, err = b.st.kv.PutKV(ctx, backends.PutKVParams{Key: b.st.countedKey(), Value: []byte(time.Now().UTC().Format(time.RFC3339))})
	if errors.Is(err, job.ErrConflict) { // another process counted too
		err = nil
	}
	return err
}
