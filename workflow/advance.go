package workflow

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// Headers a step's job carries, so that a worker knows which workflow and
// step it runs without reading the record.
const (
	HeaderWorkflow = "conveyor-workflow"
	HeaderStep     = "conveyor-workflow-step"
	// HeaderDeps lists the step's dependencies, comma-separated, when
	// they fit in maxDepsHeader bytes; without it, a step that reads its
	// results reads the workflow's record for them.
	HeaderDeps = "conveyor-workflow-deps"
)

// maxDepsHeader bounds HeaderDeps: a chord's callback with 10,000 members
// reads the record once rather than carry them all in every delivery.
const maxDepsHeader = 1024

// DefaultKeepFinished is how long a finished workflow's record is kept:
// as long as dead letters are by default, so that by the time a workflow
// ID could be used again its steps' jobs are gone too.
const DefaultKeepFinished = backends.DefaultKeepDead

// casAttempts bounds the compare-and-set retries of one advance; each
// conflict means another process moved the record on, so the next read
// has its changes and usually leaves less to do.
const casAttempts = 50

// store is what every operation needs: the client that enqueues steps and
// cancels them, and the backend's KV store and inspector.
type store struct {
	c     *queue.Client
	kv    backends.KVStore
	batch backends.KVBatcher // kv, if it batches; else nil
	in    backends.Inspector
	clock backends.Clock
	keep  time.Duration
	specs *specCache // cachedSpecs
}

func newStore(c *queue.Client, clock backends.Clock, keep time.Duration) (*store, error) {
	b := c.Backend()
	kv, ok := b.(backends.KVStore)
	if !ok {
		return nil, fmt.Errorf("%w: workflows need a backends.KVStore, %T is none", job.ErrUnsupported, b)
	}
	in, ok := b.(backends.Inspector)
	if !ok {
		return nil, fmt.Errorf("%w: workflows need a backends.Inspector, %T is none", job.ErrUnsupported, b)
	}
	if clock == nil {
		clock = backends.SystemClock{}
	}
	if keep == 0 {
		keep = DefaultKeepFinished
	}
	batch, _ := kv.(backends.KVBatcher)
	return &store{c: c, kv: kv, batch: batch, in: in, clock: clock, keep: keep, specs: cachedSpecs}, nil
}

func (s *store) now() time.Time { return s.clock.Now() }

// load reads a workflow's record and its version: its state, and its
// spec unless this store has it already.
func (s *store) load(ctx context.Context, id string) (*record, int64, error) {
	return s.loadReusing(ctx, id, nil, nil)
}

// loadReusing is load, taking the record reuse returns for the stored
// value read instead of decoding it (reuse nil, or returning nil:
// decode), and starting from read, the record's key as read already
// (Version 0: absent), when it is not nil.
func (s *store) loadReusing(ctx context.Context, id string, reuse func(kv backends.KV) *record, read *backends.KV) (*record, int64, error) {
	for attempt := 0; ; attempt++ {
		var kv backends.KV
		var err error
		switch {
		case read == nil:
			kv, err = s.kv.GetKV(ctx, backends.GetKVParams{Key: key(id), Now: s.now()})
		case read.Version == 0:
			err = fmt.Errorf("%w: key %s", job.ErrNotFound, key(id))
		default:
			kv = *read
		}
		read = nil
		if err != nil {
			return nil, 0, fmt.Errorf("workflow %s: %w", id, err)
		}
		if reuse != nil {
			if r := reuse(kv); r != nil {
				return r, kv.Version, nil
			}
		}
		r, err := s.decode(ctx, kv.Value)
		if errors.Is(err, job.ErrNotFound) && attempt < 3 {
			continue // an Add replaced its spec since the state was read
		}
		if err != nil {
			return nil, 0, fmt.Errorf("workflow %s: %w", id, err)
		}
		return r, kv.Version, nil
	}
}

// decode decodes a stored state and fills its steps from its spec.
func (s *store) decode(ctx context.Context, value []byte) (*record, error) {
	r, ss, err := decodeState(value)
	if err != nil {
		return nil, err
	}
	sp, err := s.loadSpec(ctx, r.ID, r.Spec)
	if err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	if err := r.withSpec(sp, ss); err != nil {
		return nil, err
	}
	return r, nil
}

// save writes r's state over version. A final record gets its expiry,
// and so does its spec; then its open marker is deleted (unless a reopen
// rewrote it meanwhile). Whatever of that fails after the state is
// written is done by the reconciler, which finds the marker.
func (s *store) save(ctx context.Context, r *record, version int64) (int64, error) {
	b, err := r.encode()
	if err != nil {
		return 0, err
	}
	return s.saveEncoded(ctx, r, b, version)
}

// saveEncoded is save of r encoded as b.
func (s *store) saveEncoded(ctx context.Context, r *record, b []byte, version int64) (int64, error) {
	p := backends.PutKVParams{Key: key(r.ID), Value: b, IfVersion: version, Now: s.now()}
	marker := int64(-1)
	if r.State.Final() {
		if s.keep > 0 {
			p.ExpiresAt = r.Finished.Add(s.keep)
		}
		if kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: openKey(r.ID), Now: s.now()}); err == nil {
			marker = kv.Version
		}
	}
	v, err := s.kv.PutKV(ctx, p)
	if err == nil && r.State.Final() && s.finalize(ctx, r, p.ExpiresAt) == nil && marker > 0 {
		// Best effort: the reconciler deletes a marker of a final record.
		_ = s.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: openKey(r.ID), IfVersion: marker})
	}
	return v, err
}

// finalize makes a final record's spec expire with it, and sweeps the
// specs a grown workflow's Adds may have left.
func (s *store) finalize(ctx context.Context, r *record, expires time.Time) error {
	if !expires.IsZero() {
		// A minute past the state's: a reader of a live state finds its spec.
		// A spec gone already (expired with a record kept past it) needs
		// no expiry.
		if err := s.expireSpec(ctx, r, expires.Add(time.Minute)); err != nil && !errors.Is(err, job.ErrNotFound) {
			return err
		}
	}
	if r.Grown {
		s.sweepSpecs(ctx, r.ID, r.Spec)
	}
	return nil
}

// update applies change to workflow id's record and writes it by
// compare-and-set, reading and applying again on a conflict. A change
// that reports false leaves the record as it is; its error is returned.
func (s *store) update(ctx context.Context, id string, change func(*record) (bool, error)) (*record, error) {
	for range casAttempts {
		r, version, err := s.load(ctx, id)
		if err != nil {
			return nil, err
		}
		changed, err := change(r)
		if err != nil || !changed {
			return r, err
		}
		if _, err := s.save(ctx, r, version); errors.Is(err, job.ErrConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, fmt.Errorf("%w: the record kept changing under %d attempts", job.ErrConflict, casAttempts)
}

// openKey is the KV key marking workflow id as unfinished: the reconciler
// lists these, not every record kept, so its round costs what the
// unfinished workflows cost however many finished ones are kept.
func openKey(id string) string { return openPrefix + id }

const openPrefix = "workflow-open/"

// markOpen writes workflow id's open marker, or rewrites it with a new
// version, so that a deletion by whoever saw the workflow final before
// (holding the old version) fails. The value is when, for the grace of a
// marker whose record never came.
func (s *store) markOpen(ctx context.Context, id string) error {
	now, _ := s.now().MarshalText()
	if _, err := s.kv.PutKV(ctx, backends.PutKVParams{Key: openKey(id), Value: now, Now: s.now()}); err == nil {
		return nil // a new workflow's: none was there
	}
	for range casAttempts {
		var version int64
		kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: openKey(id), Now: s.now()})
		switch {
		case err == nil:
			version = kv.Version
		case !errors.Is(err, job.ErrNotFound):
			return fmt.Errorf("workflow %s: open marker: %w", id, err)
		}
		_, err = s.kv.PutKV(ctx, backends.PutKVParams{Key: openKey(id), Value: now, IfVersion: version, Now: s.now()})
		if !errors.Is(err, job.ErrConflict) {
			if err != nil {
				return fmt.Errorf("workflow %s: open marker: %w", id, err)
			}
			return nil
		}
	}
	return fmt.Errorf("workflow %s: open marker: %w", id, job.ErrConflict)
}

// remove deletes a workflow's record at version, then its spec and its
// marker.
func (s *store) remove(ctx context.Context, r *record, version int64) error {
	if err := s.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: key(r.ID), IfVersion: version}); err != nil {
		return err
	}
	s.dropSpec(ctx, r.ID, r.Spec)
	return s.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: openKey(r.ID)})
}

// advance folds obs (step name -> what its job is now) into workflow id's
// record, cancels or releases the blocked steps that can move, enqueues
// the released ones (enqueue first, record second: a crash between leaves
// jobs whose IDs make the next enqueue a duplicate) and writes the record
// by compare-and-set, again on a conflict. It is idempotent, so any
// process may run it for any workflow at any time.
func (s *store) advance(ctx context.Context, id string, obs map[string]StepState) (*record, error) {
	return s.advanceMine(ctx, id, obs, map[string]bool{}, nil)
}

// advanceMine is advance, given the steps the caller enqueued already
// (mine), which it cancels too if a cancel of the workflow raced them, and
// starting from read, the record as the caller wrote it, if not nil.
func (s *store) advanceMine(ctx context.Context, id string, obs map[string]StepState, mine map[string]bool, read *backends.KV) (*record, error) {
	for range casAttempts {
		r, version, err := s.loadReusing(ctx, id, nil, read)
		read = nil
		if err != nil {
			return nil, err
		}
		if r.CancelRequested {
			s.cancelOrphans(ctx, r, mine)
		}
		wasFinal := r.State.Final()
		now := s.now()
		changed := false
		if r.State == Starting && r.Tx {
			// Enqueued in the caller's transaction: only a root job seen
			// proves that it committed, and then every root exists.
			if len(obs) == 0 {
				return r, nil
			}
			for _, st := range r.Steps {
				if len(st.Deps) == 0 && st.State == StepBlocked {
					st.State, st.HasJob, st.Enqueued = StepEnqueued, true, r.Created
				}
			}
			r.State, changed = Running, true
		}
		for name, st := range obs {
			changed = r.observe(name, st, now) || changed
			if r.CancelRequested && st == StepEnqueued {
				// A first job of a cancelled transactional start that
				// committed late, or a replay after the cancel.
				_, _ = s.c.Cancel(ctx, JobID(id, name))
			}
		}
		ready, settled := r.settle(now)
		changed = changed || settled
		var enqErr error
		if len(ready) > 0 {
			ready, enqErr = s.enqueueSteps(ctx, r, ready, now, r.State == Starting)
			for _, st := range ready {
				mine[st.Name] = true
			}
			changed = changed || len(ready) > 0
		}
		if r.State == Starting && enqErr == nil {
			r.State, changed = Running, true
		}
		changed = r.finish(now) || changed
		if !changed {
			return r, enqErr
		}
		if wasFinal && !r.State.Final() { // a replay reopened it
			if err := s.markOpen(ctx, id); err != nil {
				return nil, err
			}
			if s.keep > 0 { // its spec must not expire while it runs
				if err := s.expireSpec(ctx, r, time.Time{}); err != nil {
					return nil, err
				}
			}
		}
		if _, err := s.save(ctx, r, version); err != nil {
			if errors.Is(err, job.ErrConflict) {
				continue
			}
			return nil, fmt.Errorf("workflow %s: save: %w", id, err)
		}
		return r, enqErr
	}
	return nil, fmt.Errorf("workflow %s: %w: the record kept changing under %d attempts", id, job.ErrConflict, casAttempts)
}

// cancelOrphans cancels the jobs this advance enqueued that the record,
// written meanwhile by Cancel, holds as cancelled without a job.
func (s *store) cancelOrphans(ctx context.Context, r *record, mine map[string]bool) {
	for name := range mine {
		if st := r.step(name); st != nil && st.State == StepCancelled && !st.HasJob {
			_, _ = s.c.Cancel(ctx, JobID(r.ID, name)) // finished or absent: nothing to stop
		}
	}
}

// enqueueSteps enqueues ready steps in one all-or-nothing batch and marks
// those enqueued. A step the backend refuses as such (invalid, too large)
// cannot run: it is marked dead with the reason, and the rest go on. A
// full queue or a backend failure leaves the steps blocked, for the next
// advance (the reconciler's) to try again.
//
// While the workflow is Starting (strict) any refusal is returned as is:
// Enqueue then refuses the whole workflow.
func (s *store) enqueueSteps(ctx context.Context, r *record, ready []*stepRecord, now time.Time, strict bool) ([]*stepRecord, error) {
	reqs := make([]queue.Request, len(ready))
	for i, st := range ready {
		reqs[i] = request(r.ID, st)
	}
	_, err := s.c.EnqueueMany(ctx, reqs...)
	if err == nil {
		for _, st := range ready {
			st.State, st.HasJob, st.Enqueued = StepEnqueued, true, now
		}
		return ready, nil
	}
	if strict || !unrunnable(err) {
		return nil, err
	}
	// One step spoils the batch: find it by enqueueing one at a time.
	var done []*stepRecord
	var last error
	for i, st := range ready {
		_, err := s.c.EnqueueMany(ctx, reqs[i])
		switch {
		case err == nil:
			st.State, st.HasJob, st.Enqueued = StepEnqueued, true, now
		case unrunnable(err):
			st.State, st.Finished = StepDead, now
			st.Reason = "its job was refused at enqueue: " + err.Error()
		default:
			last = err
			continue
		}
		done = append(done, st)
	}
	return done, last
}

// unrunnable reports an enqueue refused for the request itself, which no
// retry can pass.
func unrunnable(err error) bool {
	return errors.Is(err, job.ErrInvalid) || errors.Is(err, job.ErrPayloadTooLarge)
}

// rawCodec passes a step's stored payload through: it was encoded with the
// step's own task codec when the workflow was built.
type rawCodec struct{}

func (rawCodec) Encode(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Decode(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}

// request rebuilds a step's job from its spec through a task of the same
// name, so that the client's checks, bounds, tracer and observer apply
// as to any enqueue.
func request(workflowID string, st *stepRecord) queue.Request {
	sp := st.Spec
	md := sp.MaxDeliveries
	if md == 0 {
		md = -1 // stored 0 is "no bound", which a task spells negative
	}
	t := queue.NewTask[[]byte, queue.None](sp.Task, queue.TaskOptions{
		Queue: sp.Queue, Priority: sp.Priority, Timeout: sp.Timeout, MaxDeliveries: md, Codec: rawCodec{},
	})
	h := make(map[string]string, len(sp.Headers)+3)
	maps.Copy(h, sp.Headers)
	h[HeaderWorkflow], h[HeaderStep] = workflowID, st.Name
	if deps := strings.Join(st.Deps, ","); len(deps) <= maxDepsHeader {
		h[HeaderDeps] = deps
	}
	return t.Request(sp.Payload, &queue.EnqueueOptions{
		ID: JobID(workflowID, st.Name), Headers: h, Delay: sp.Delay, RunAt: sp.RunAt, RetryPolicy: sp.RetryPolicy,
	})
}
