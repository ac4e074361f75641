package workflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// Flush advances, now and in the caller's goroutine, every workflow whose
// step jobs this process's workers reported finished, and returns how many
// step outcomes it recorded. The outcomes of one workflow go into one
// compare-and-set, which is what keeps a 10,000-member group cheap. The
// workflows of one Flush are advanced together: their records are read,
// the steps all of them release are enqueued in one EnqueueMany, then
// the records are written. On a backends.KVBatcher the reads are one
// GetKVMany and the writes one PutKVMany (per kvBatch records), so a
// thousand chains cost three round trips a round between them; without
// one, each record is read and written on its own, up to flushers at
// once. A workflow the shared path does not fit (starting, cancelled,
// finishing, or written by another process meanwhile) is advanced alone.
func (e *Engine) Flush(ctx context.Context) (int, error) {
	return e.flush(ctx, false)
}

// armAt has Run's next paced round come by at. e.mu is held.
func (e *Engine) armAt(at time.Time) {
	if e.armed.IsZero() || at.Before(e.armed) {
		e.armed = at
	}
}

// flush is Flush; paced, it leaves pending the large workflows whose
// last round was less than their pace ago (heldRecords.due) and the
// parked ones (park.go), parks what this round would write only to record
// outcomes, and arms Run's next round for when the first of them is due.
func (e *Engine) flush(ctx context.Context, paced bool) (int, error) {
	e.mu.Lock()
	batch := e.pending
	e.pending = map[string]map[string]StepState{}
	e.armed = time.Time{}
	if paced {
		now := time.Now()
		for id, obs := range batch {
			due := e.held.due(id)
			parked, until := e.parkedNow(id, obs, now)
			if parked {
				due = until
			}
			if due.After(now) {
				e.pending[id] = obs
				delete(batch, id)
				e.armAt(due)
			}
		}
	}
	e.mu.Unlock()
	flights := make([]*flight, 0, len(batch))
	for id, obs := range batch {
		flights = append(flights, &flight{id: id, obs: obs})
	}
	e.s.readAll(ctx, flights)
	eachAtOnce(len(flights), func(i int) { e.s.prepare(ctx, flights[i], &e.held) })
	e.s.enqueueReleased(ctx, flights)
	eachAtOnce(len(flights), func(i int) { flights[i].stage() })
	e.park(flights, paced)
	e.s.writeAll(ctx, flights)
	var (
		mu   sync.Mutex
		errs []error
		n    int
	)
	eachAtOnce(len(flights), func(i int) {
		f := flights[i]
		err := e.s.land(ctx, f, &e.held)
		mu.Lock()
		defer mu.Unlock()
		if err != nil && !errors.Is(err, job.ErrNotFound) {
			e.keep(f.id, f.obs)
			errs = append(errs, err)
			return
		}
		if !f.parked {
			n += len(f.obs)
		}
	})
	return n, errors.Join(errs...)
}

// kvBatch bounds the keys of one GetKVMany or PutKVMany.
const kvBatch = 1000

// readAll reads every flight's record with GetKVMany, when the store
// batches, and the specs they name that this store has not met; prepare
// reads the others' itself. A batch that fails leaves its flights to do
// so too.
func (s *store) readAll(ctx context.Context, flights []*flight) {
	if s.batch == nil {
		return
	}
	for part := range slices.Chunk(flights, kvBatch) {
		keys := make([]string, len(part))
		for i, f := range part {
			keys[i] = key(f.id)
		}
		kvs, err := s.batch.GetKVMany(ctx, backends.GetKVManyParams{Keys: keys, Now: s.now()})
		if err != nil {
			continue
		}
		for i, f := range part {
			f.read = &kvs[i]
		}
		s.readSpecs(ctx, kvs)
	}
}

// writeAll writes with PutKVMany, when the store batches, every staged
// record; land writes the others. A record that finishes gets its expiry,
// and then its spec's expiry and its marker's deletion follow as save
// does them (finishAll). A write that lost its compare-and-set is left
// for land to advance alone; a batch that failed is left for land to
// write again, its outcome unknown: a compare-and-set that did land makes
// that second write a conflict, and the advance alone then finds the
// record as written.
func (s *store) writeAll(ctx context.Context, flights []*flight) {
	if s.batch == nil {
		return
	}
	var in []*flight
	for _, f := range flights {
		if f.value != nil {
			in = append(in, f)
		}
	}
	now := s.now()
	for part := range slices.Chunk(in, kvBatch) {
		// Read before the state is written, as save does: a replay that
		// reopens the record then rewrites the marker, and its deletion
		// at the version read fails.
		markers, err := s.readMarkers(ctx, part)
		if err != nil {
			continue
		}
		puts := make([]backends.PutKVParams, len(part))
		for i, f := range part {
			puts[i] = backends.PutKVParams{Key: key(f.id), Value: f.value, IfVersion: f.version, Now: now}
			if f.r.State.Final() && s.keep > 0 {
				puts[i].ExpiresAt = f.r.Finished.Add(s.keep)
			}
		}
		vs, err := s.batch.PutKVMany(ctx, backends.PutKVManyParams{Puts: puts})
		if err != nil {
			continue
		}
		var finished []*flight
		for i, f := range part {
			f.written, f.conflict = vs[i], vs[i] == 0
			if f.written != 0 && f.r.State.Final() {
				finished = append(finished, f)
			}
		}
		s.finishAll(ctx, finished, markers)
	}
}

// readMarkers returns the open markers' versions of the flights whose
// records finish, by workflow ID (none: absent).
func (s *store) readMarkers(ctx context.Context, flights []*flight) (map[string]int64, error) {
	var ids, keys []string
	for _, f := range flights {
		if f.r.State.Final() {
			ids, keys = append(ids, f.id), append(keys, openKey(f.id))
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	kvs, err := s.batch.GetKVMany(ctx, backends.GetKVManyParams{Keys: keys, Now: s.now()})
	if err != nil {
		return nil, err
	}
	versions := make(map[string]int64, len(kvs))
	for i, kv := range kvs {
		versions[ids[i]] = kv.Version
	}
	return versions, nil
}

// finishAll does what save does after a final record's write, for the
// records of finished just written: their specs' expiries in one
// PutKVMany (a spec not cached, or whose compare-and-set lost, goes
// through finalize alone), then each open marker deleted at the version
// read before the write. What fails is the reconciler's, as after save.
func (s *store) finishAll(ctx context.Context, finished []*flight, markers map[string]int64) {
	alone := make(map[*flight]bool)
	if s.keep > 0 {
		var puts []backends.PutKVParams
		var in []*flight
		var specs []*spec
		for _, f := range finished {
			k := specKey(f.id, f.r.Spec)
			sp := s.specs.get(k)
			if sp == nil {
				alone[f] = true
				continue
			}
			put, err := s.expiringSpec(k, sp, f.r.Finished.Add(s.keep).Add(time.Minute))
			if err != nil {
				alone[f] = true
				continue
			}
			puts, in, specs = append(puts, put), append(in, f), append(specs, sp)
		}
		vs, err := s.batch.PutKVMany(ctx, backends.PutKVManyParams{Puts: puts})
		for i, f := range in {
			if err != nil || vs[i] == 0 {
				alone[f] = true
				continue
			}
			specs[i].version.Store(vs[i])
		}
	}
	_ = allAtOnce(len(finished), func(i int) error {
		f := finished[i]
		if alone[f] {
			if err := s.finalize(ctx, f.r, f.r.Finished.Add(s.keep)); err != nil {
				return err
			}
		} else if f.r.Grown {
			s.sweepSpecs(ctx, f.id, f.r.Spec)
		}
		if v := markers[f.id]; v > 0 {
			return s.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: openKey(f.id), IfVersion: v})
		}
		return nil
	})
}

// flushers bounds the workflows one Flush reads or writes at once.
const flushers = 16

// eachAtOnce runs fn(i) for every i below n, up to flushers at once.
func eachAtOnce(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(flushers, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// allAtOnce is eachAtOnce of an fn that can fail; it returns every
// error, joined.
func allAtOnce(n int, fn func(i int) error) error {
	errs := make([]error, n)
	eachAtOnce(n, func(i int) { errs[i] = fn(i) })
	return errors.Join(errs...)
}

// keep puts back outcomes an advance could not record, for the next
// round, unless a newer outcome of the step came since.
func (e *Engine) keep(id string, obs map[string]StepState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keepLocked(id, obs)
}

// keepLocked is keep with e.mu held.
func (e *Engine) keepLocked(id string, obs map[string]StepState) {
	for step, st := range obs {
		if m := e.pending[id]; m == nil || m[step] == "" {
			if m == nil {
				e.pending[id] = map[string]StepState{}
			}
			e.pending[id][step] = st
		}
	}
}

// flight is one workflow's advance within a Flush.
type flight struct {
	id   string
	obs  map[string]StepState
	read *backends.KV // its record's key, if readAll read it
	// Set by prepare on the shared path: the record read, with obs
	// folded in, and the steps that releases.
	r       *record
	version int64
	now     time.Time
	changed bool
	ready   []*stepRecord
	alone   bool  // advance it alone (advance), in land
	parked  bool  // its outcomes wait, its record unwritten (park.go)
	err     error // the read, or stage's encode, failed
	// Set by stage, when the record is to be written: r encoded.
	value []byte
	// Set by writeAll: the version written, or that the compare-and-set
	// lost.
	written  int64
	conflict bool
}

// prepare reads f's record (unless readAll did) and folds its outcomes
// in, as advance does, unless the record needs what only advance does: a
// start to finish, a cancel to carry out, a final record that a replay
// may reopen. A large record the last round wrote is taken from held if
// the stored value is still the one it wrote, instead of decoded again.
func (s *store) prepare(ctx context.Context, f *flight, held *heldRecords) {
	r, version, err := s.loadReusing(ctx, f.id, held.take(f.id), f.read)
	if err != nil {
		f.err = err
		return
	}
	if r.State == Starting || r.CancelRequested || r.State.Final() {
		f.alone = true
		return
	}
	f.r, f.version, f.now = r, version, s.now()
	for name, st := range f.obs {
		f.changed = r.observe(name, st, f.now) || f.changed
	}
	var settled bool
	f.ready, settled = r.settle(f.now)
	f.changed = f.changed || settled
}

// stage finishes a prepared flight's record if every step has finished
// and encodes it if it changed.
func (f *flight) stage() {
	if f.err != nil || f.alone {
		return
	}
	if changed := f.r.finish(f.now) || f.changed || len(f.ready) > 0; !changed {
		return
	}
	f.value, f.err = f.r.encode()
}

// enqueueBatch bounds the requests of one EnqueueMany of released steps.
const enqueueBatch = 1000

// enqueueReleased enqueues the steps the prepared flights release, in
// batches of whole flights. A batch the backend refuses sends its flights
// to advance alone, which enqueues their steps again (the jobs that did
// get in are duplicates by ID) and sets apart a step that cannot run.
func (s *store) enqueueReleased(ctx context.Context, flights []*flight) {
	var reqs []queue.Request
	var in []*flight
	send := func() {
		if len(reqs) == 0 {
			return
		}
		_, err := s.c.EnqueueMany(ctx, reqs...)
		for _, f := range in {
			if err != nil {
				f.alone = true
				continue
			}
			for _, st := range f.ready {
				st.State, st.HasJob, st.Enqueued = StepEnqueued, true, f.now
			}
		}
		reqs, in = reqs[:0], in[:0]
	}
	for _, f := range flights {
		if f.r == nil || f.alone || len(f.ready) == 0 {
			continue
		}
		if len(reqs) > 0 && len(reqs)+len(f.ready) > enqueueBatch {
			send()
		}
		for _, st := range f.ready {
			reqs = append(reqs, request(f.r.ID, st))
		}
		in = append(in, f)
	}
	send()
}

// land writes a staged flight's record by compare-and-set, unless
// writeAll did. A flight sent to advance alone, or whose record another
// process wrote since it was read, is advanced by advance, which reads it
// again (its enqueued steps are passed on: a cancel that raced them
// cancels them too).
func (s *store) land(ctx context.Context, f *flight, held *heldRecords) error {
	if f.err != nil {
		return f.err
	}
	if f.parked {
		return nil
	}
	mine := map[string]bool{}
	if !f.alone {
		for _, st := range f.ready {
			mine[st.Name] = true
		}
		if f.value == nil {
			return nil
		}
		v := f.written
		var err error
		switch {
		case f.conflict:
			err = job.ErrConflict
		case v == 0:
			v, err = s.saveEncoded(ctx, f.r, f.value, f.version)
		}
		if err == nil {
			if !f.r.State.Final() {
				held.put(f.id, f.r, v, f.value)
			}
			return nil
		}
		if !errors.Is(err, job.ErrConflict) {
			return fmt.Errorf("workflow %s: save: %w", f.id, err)
		}
	}
	_, err := s.advanceMine(ctx, f.id, f.obs, mine, nil)
	return err
}

// heldRecords keeps the records of large workflows from one round of
// advances to the next, each with the version it was written at, so that
// a 10,000-step chord whose members finish over many rounds is decoded
// once, not once a round (a decode allocates a step record each). A
// record is taken out while a round works on it, so two rounds never
// share one; one is reused only if the stored value is still the one it
// wrote, byte for byte (a version alone could repeat under a workflow ID
// used again), and else decoded as usual.
type heldRecords struct {
	mu sync.Mutex
	m  map[string]heldRecord
}

type heldRecord struct {
	r       *record
	version int64
	value   []byte    // r as written
	due     time.Time // its next round, paced
}

// Records are held from holdSteps steps up, at most holdMax of them.
//
// A held record's rounds are paced, a round at most every pacePerStep
// times its steps (2ms for 10,000): each round encodes and writes the
// whole record, so a 10,000-member group whose members finish one by one
// would otherwise cost a round per member that finished while the last
// round ran, hundreds of rounds competing with the workers for the CPU.
// Paced, its bookkeeping stays a small share of the work, and a step it
// releases waits at most its pace longer.
const (
	holdSteps   = 1000
	holdMax     = 64
	pacePerStep = 200 * time.Nanosecond
)

// take removes id's record and returns the reuse function of
// loadReusing for it (nil if none is held).
func (h *heldRecords) take(id string) func(kv backends.KV) *record {
	h.mu.Lock()
	defer h.mu.Unlock()
	hr, ok := h.m[id]
	if !ok {
		return nil
	}
	delete(h.m, id)
	return func(kv backends.KV) *record {
		if kv.Version != hr.version || !bytes.Equal(kv.Value, hr.value) {
			return nil
		}
		return hr.r
	}
}

func (h *heldRecords) put(id string, r *record, version int64, value []byte) {
	if len(r.Steps) < holdSteps {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]heldRecord{}
	}
	if len(h.m) < holdMax {
		h.m[id] = heldRecord{r, version, value, time.Now().Add(time.Duration(len(r.Steps)) * pacePerStep)}
	}
}

// due returns when workflow id's next round is due (zero: not held).
func (h *heldRecords) due(id string) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m[id].due
}
