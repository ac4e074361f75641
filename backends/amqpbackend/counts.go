package amqpbackend

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
// Config.RecountEvery (and once when a store has no counts yet).
//
// A finished job's record expires with its retention, silently, so its
// count must too: finished jobs are counted in buckets by when they
// expire, one key per bucket expiring at the bucket's end. A count drops
// at most a bucket (1/256 of the retention) after its jobs expire.

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

func (s store) countPrefix() string { return s.prefix + "/count/" }
func (s store) countedKey() string  { return s.prefix + "/counted" }

// countName is the counter's key: the queue last, as it may hold a slash.
func (s store) countName(k countKey) string {
	return s.countPrefix() + string(k.state) + "/" + strconv.FormatInt(k.until, 10) + "/" + k.queue
}

func (s store) parseCount(name string) (countKey, bool) {
	st, rest, ok1 := strings.Cut(strings.TrimPrefix(name, s.countPrefix()), "/")
	until, q, ok2 := strings.Cut(rest, "/")
	n, err := strconv.ParseInt(until, 10, 64)
	return countKey{queue: q, state: job.State(st), until: n}, ok1 && ok2 && err == nil
}

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

// flushCounts adds the pending counts to the counter keys. What it could
// not write stays pending.
func (s store) flushCounts(ctx context.Context) error {
	s.cnt.flushMu.Lock()
	defer s.cnt.flushMu.Unlock()
	s.cnt.mu.Lock()
	pending := s.cnt.pending
	s.cnt.pending = nil
	s.cnt.mu.Unlock()
	var firstErr error
	for k, delta := range pending {
		if err := s.addCount(ctx, k, delta); err != nil {
			s.cnt.add(k, delta)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// addCount adds delta to one counter key, deleting it at zero.
func (s store) addCount(ctx context.Context, k countKey, delta int) error {
	name := s.countName(k)
	for {
		n, v, err := s.readCount(ctx, name)
		if err != nil {
			return err
		}
		err = s.writeCount(ctx, k, n+delta, v)
		if !errors.Is(err, job.ErrConflict) {
			return err
		}
	}
}

func (s store) readCount(ctx context.Context, name string) (int, int64, error) {
	kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: name})
	if errors.Is(err, job.ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("amqpbackend: count %s: %w", name, err)
	}
	n, err := strconv.Atoi(string(kv.Value))
	if err != nil {
		return 0, 0, fmt.Errorf("amqpbackend: count %s: %w", name, err)
	}
	return n, kv.Version, nil
}

// writeCount sets counter k to n if its key is at version v (0: absent).
func (s store) writeCount(ctx context.Context, k countKey, n int, v int64) error {
	name := s.countName(k)
	var err error
	if n == 0 {
		if v == 0 {
			return nil
		}
		err = s.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: name, IfVersion: v})
	} else {
		var until time.Time
		if k.until != 0 {
			until = time.Unix(0, k.until)
		}
		_, err = s.kv.PutKV(ctx, backends.PutKVParams{Key: name, Value: []byte(strconv.Itoa(n)), IfVersion: v, ExpiresAt: until})
	}
	if err != nil && !errors.Is(err, job.ErrConflict) {
		return fmt.Errorf("amqpbackend: count %s: %w", name, err)
	}
	return err
}

// readCounts sums the counter keys by queue and state.
func (s store) readCounts(ctx context.Context) (map[string]map[job.State]int, error) {
	kvs, err := s.kv.ListKV(ctx, backends.ListKVParams{Prefix: s.countPrefix()})
	if err != nil {
		return nil, fmt.Errorf("amqpbackend: counts: %w", err)
	}
	out := map[string]map[job.State]int{}
	for _, kv := range kvs {
		k, ok := s.parseCount(kv.Key)
		n, err := strconv.Atoi(string(kv.Value))
		if !ok || err != nil {
			continue
		}
		if out[k.queue] == nil {
			out[k.queue] = map[job.State]int{}
		}
		out[k.queue][k.state] += n
	}
	return out, nil
}

// recount sets the counter keys to what the jobs say, from a scan of
// every job. It cannot stop other processes' changes meanwhile, so it
// reads the counters before the scan and, once every change the scan may
// have seen has been flushed (a few countFlush later), writes a counter
// only if its key did not change since that read: a counter that did is
// being kept up by a live process, and is left for the next recount.
func (b *Backend) recount(ctx context.Context, settle time.Duration) error {
	s := b.st
	if err := s.flushCounts(ctx); err != nil {
		return err
	}
	kvs, err := s.kv.ListKV(ctx, backends.ListKVParams{Prefix: s.countPrefix()})
	if err != nil {
		return fmt.Errorf("amqpbackend: recount: %w", err)
	}
	type seen struct {
		n int
		v int64
	}
	have := map[countKey]seen{}
	for _, kv := range kvs {
		k, ok := s.parseCount(kv.Key)
		n, err := strconv.Atoi(string(kv.Value))
		if ok && err == nil {
			have[k] = seen{n, kv.Version}
		}
	}
	docs, err := b.scan(ctx)
	if err != nil {
		return err
	}
	want := map[countKey]int{}
	for _, d := range docs {
		want[s.countOf(d)]++
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			want[k] = 0
		}
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	fixed := 0
	for k, n := range want {
		if h := have[k]; h.n != n {
			err := s.writeCount(ctx, k, n, h.v)
			if err != nil && !errors.Is(err, job.ErrConflict) {
				return err
			}
			if err == nil {
				fixed++
			}
		}
	}
	if fixed > 0 {
		b.cfg.Logger.Info("amqpbackend: recounted the store's jobs; counts repaired", "counters", fixed)
	}
	return nil
}

// keepCounts flushes counts every countFlush and recounts every
// Config.RecountEvery, until Close; then it flushes once more.
func (b *Backend) keepCounts() {
	defer b.bg.Done()
	flush := time.NewTicker(countFlush)
	defer flush.Stop()
	var recount <-chan time.Time
	if b.cfg.RecountEvery > 0 {
		t := time.NewTicker(b.cfg.RecountEvery)
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
			if err := b.st.flushCounts(b.ctx); err != nil && time.Since(b.st.cnt.warned) > 10*time.Second {
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
	if err := b.recount(ctx, 0); err != nil {
		return err
	}
	_, err = b.st.kv.PutKV(ctx, backends.PutKVParams{Key: b.st.countedKey(), Value: []byte(time.Now().UTC().Format(time.RFC3339))})
	if errors.Is(err, job.ErrConflict) { // another process counted too
		err = nil
	}
	return err
}
