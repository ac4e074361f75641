package workflow

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// Options configure one workflow. Zero values mean the stated default.
type Options struct {
	// ID names the workflow, chosen by the caller so that an Enqueue
	// retried after an error wrapping ErrOutcomeUnknown (even from another
	// process) cannot make a second workflow: while a record with this ID
	// exists, Enqueue returns it with Duplicate set. At most 72 printable
	// ASCII characters, no spaces or commas. Default: a new time-ordered UUID.
	ID string
	// AllowFailure lets every step run once its dependencies finished,
	// even when some failed, as Step.AllowFailure does for one step.
	// Default false: a failed step cancels its dependents.
	AllowFailure bool
	// Clock is the time the record's timings are read from. Default the
	// system clock.
	Clock backends.Clock
}

// Ref identifies an enqueued workflow.
type Ref struct {
	ID string
	// Duplicate is set when a workflow with this ID already existed:
	// nothing new was stored (a start a crash left half done is completed,
	// by this call or else by the reconciler).
	Duplicate bool
}

// Request is one workflow of EnqueueMany.
type Request struct {
	Root    Node
	Options *Options // nil: every default
}

// Enqueue stores workflow root and enqueues its first steps, all or
// nothing: a step that cannot be built (arguments that do not encode, a
// cycle, a dependency on an unknown step, a bad name) or first steps the
// backend refuses (a full queue, a bad request) fail it whole and leave
// nothing stored. An error that leaves open whether it was stored wraps
// ErrOutcomeUnknown; what was stored then is a record in state Starting,
// which the reconciler completes (or an Enqueue with the same Options.ID,
// which returns it as a Duplicate), never a second workflow.
//
// Past 1,000 first steps (a 10,000-member group) into queues without a
// bound, the first 1,000 are what is all or nothing: the workflow is
// stored as they go in, so workers start on them while the rest follow,
// 1,000 a call, before Enqueue returns. A later batch the backend refuses
// even so (the largest payload goes in the first) ends its steps as a
// refusal at run time does: dead with the reason, or blocked until the
// queue has room. An Enqueue that dies midway leaves the record Filling,
// and the reconciler enqueues the rest past StartGrace.
//
// The backend must be a backends.KVStore and a backends.Inspector (every
// bundled backend is; AMQP with a store). Enqueue is EnqueueMany of one.
func Enqueue(ctx context.Context, c *queue.Client, root Node, opts *Options) (Ref, error) {
	refs, err := EnqueueMany(ctx, c, Request{Root: root, Options: opts})
	if err != nil {
		return Ref{}, err
	}
	return refs[0], nil
}

// EnqueueMany is Enqueue of many workflows in the round trips of one (up
// to 500 of them; more take a call per 1,000 keys written): their open
// markers and specs go in one write, their records in a second, all their
// first steps in one enqueue of jobs and their records as started in a
// last write (on a backends.KVBatcher each write is PutKVMany, 1,000 keys
// a call; else each key is written on its own, 16 at once). It is all or
// nothing for the batch: a request that cannot be built, two requests
// with one ID (job.ErrInvalid), or first steps the backend refuses fail
// every request and leave nothing stored (past 1,000 first steps between
// them, the first 1,000, as in Enqueue). A request
// whose ID is taken is returned as a Duplicate, as by Enqueue. An error
// that leaves open what was stored wraps ErrOutcomeUnknown and names the
// workflows. The refs are in the order of reqs; the batch's writes are
// timed by the first request's Options.Clock.
func EnqueueMany(ctx context.Context, c *queue.Client, reqs ...Request) ([]Ref, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	s, rs, err := prepareMany(c, reqs)
	if err != nil {
		return nil, err
	}
	if err := s.storeStart(ctx, rs); err != nil {
		return nil, err
	}
	refs := make([]Ref, len(rs))
	fresh, taken, err := s.storeRecords(ctx, rs, refs)
	if err != nil {
		return nil, err
	}
	// The IDs are taken, whatever completing their starts comes to: one
	// that fails here is the reconciler's to complete.
	_ = allAtOnce(len(taken), func(i int) error {
		r := taken[i]
		s.dropUnnamed(ctx, r.ID, r.Spec) // the spec is no one's, unless the taken write was this one's
		return s.completeStart(ctx, r.ID)
	})
	if len(fresh) > 0 {
		if err := s.startSteps(ctx, fresh); err != nil {
			return nil, err
		}
	}
	return refs, nil
}

// EnqueueTx enqueues workflow root inside the caller's database
// transaction (a *sql.Tx, or a pgx.Tx on PostgreSQL; the backend must be a
// backends.TxEnqueuer): its first steps' jobs exist if and only if tx
// commits. It is Prepare and then Prepared.EnqueueTx; on SQLite, whose
// backend writes through one connection that an open transaction holds,
// call Prepare before beginning the transaction.
func EnqueueTx(ctx context.Context, c *queue.Client, tx any, root Node, opts *Options) (Ref, error) {
	p, err := Prepare(ctx, c, root, opts)
	if err != nil {
		return Ref{}, err
	}
	return p.EnqueueTx(ctx, tx)
}

// Prepared is a workflow whose record is stored, waiting to be enqueued
// in the caller's transaction.
type Prepared struct {
	s       *store
	r       *record
	version int64
	dup     bool
}

// ID returns the prepared workflow's ID.
func (p *Prepared) ID() string { return p.r.ID }

// Prepare checks workflow root and stores its record, for
// Prepared.EnqueueTx. The record cannot join the caller's transaction
// (the KV store has no transactional form), so it is written first, in
// state Starting and marked as transactional: nothing enqueues a step of
// it until one of its first jobs is seen, which proves the commit. The
// reconciler deletes such a record whose first jobs never appeared after
// Config.TxGrace (the caller rolled back, or never enqueued). A taken ID
// is a duplicate, as with Enqueue.
func Prepare(ctx context.Context, c *queue.Client, root Node, opts *Options) (*Prepared, error) {
	if _, ok := c.Backend().(backends.TxEnqueuer); !ok {
		return nil, fmt.Errorf("%w: transactional enqueue on %T", job.ErrUnsupported, c.Backend())
	}
	s, r, err := prepare(c, root, opts)
	if err != nil {
		return nil, err
	}
	r.Tx = true
	if err := s.storeStart(ctx, []*record{r}); err != nil {
		return nil, err
	}
	version, err := s.save(ctx, r, 0)
	switch {
	case errors.Is(err, job.ErrConflict):
		s.dropUnnamed(ctx, r.ID, r.Spec)
		return &Prepared{s: s, r: r, dup: true}, nil
	case err != nil:
		return nil, fmt.Errorf("workflow %s: %w", r.ID, err)
	}
	return &Prepared{s: s, r: r, version: version}, nil
}

// EnqueueTx enqueues the prepared workflow's first steps in tx. On an
// error the caller rolls back; the record is deleted.
func (p *Prepared) EnqueueTx(ctx context.Context, tx any) (Ref, error) {
	if p.dup {
		return Ref{ID: p.r.ID, Duplicate: true}, nil
	}
	var reqs []queue.Request
	for _, st := range p.r.Steps {
		if len(st.Deps) == 0 {
			reqs = append(reqs, request(p.r.ID, st))
		}
	}
	if _, err := p.s.c.EnqueueTx(ctx, tx, reqs...); err != nil {
		_ = p.s.remove(ctx, p.r, p.version)
		return Ref{}, fmt.Errorf("workflow %s: %w", p.r.ID, err)
	}
	return Ref{ID: p.r.ID}, nil
}

// prepare builds and checks a workflow's record, state Starting.
func prepare(c *queue.Client, root Node, opts *Options) (*store, *record, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.ID == "" {
		o.ID = uuid.Must(uuid.NewV7()).String()
	}
	if err := validName("workflow ID", o.ID, maxWorkflowID); err != nil {
		return nil, nil, err
	}
	steps, err := build(root)
	if err != nil {
		return nil, nil, fmt.Errorf("workflow %s: %w", o.ID, err)
	}
	s, err := newStore(c, o.Clock, 0)
	if err != nil {
		return nil, nil, err
	}
	r := &record{Format: recordFormat, ID: o.ID, State: Starting, AllowFailure: o.AllowFailure, Created: s.now(), Steps: steps}
	r.link()
	return s, r, nil
}

// completeStart completes the start of workflow id, whose ID an Enqueue
// found taken, if a caller that died left it half done.
func (s *store) completeStart(ctx context.Context, id string) error {
	r, _, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	if r.State == Starting && !r.Tx {
		if _, err := s.advance(ctx, id, nil); err != nil {
			return fmt.Errorf("workflow %s: completing its start: %w", id, err)
		}
	}
	return nil
}

// namesSpec reports whether workflow id's stored state names spec token.
// A conflict on a state's write may be the writer's own write: applied,
// its reply lost, and met by the client's retry (go-redis retries a
// command on a dropped connection), so the spec it just wrote is not
// necessarily no one's.
func (s *store) namesSpec(ctx context.Context, id, token string) (bool, error) {
	kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: key(id), Now: s.now()})
	if err != nil {
		return false, err
	}
	r, _, err := decodeState(kv.Value)
	if err != nil {
		return false, err
	}
	return r.Spec == token, nil
}

// dropUnnamed deletes spec token of workflow id if its state names
// another. One it cannot tell about is kept: a spec left behind costs its
// bytes, a spec a state names lost is the workflow lost.
func (s *store) dropUnnamed(ctx context.Context, id, token string) {
	if named, err := s.namesSpec(ctx, id, token); err == nil && !named {
		s.dropSpec(ctx, id, token)
	}
}

// refused reports an enqueue error that stored nothing.
func refused(err error) bool {
	for _, no := range []error{job.ErrQueueFull, job.ErrInvalid, job.ErrClosed, job.ErrUnsupported, job.ErrPayloadTooLarge} {
		if errors.Is(err, no) && !errors.Is(err, job.ErrOutcomeUnknown) {
			return true
		}
	}
	return false
}

// prepareMany builds and checks the records of EnqueueMany's requests,
// on the store of the first.
func prepareMany(c *queue.Client, reqs []Request) (*store, []*record, error) {
	var s *store
	rs := make([]*record, len(reqs))
	seen := make(map[string]bool, len(reqs))
	for i, q := range reqs {
		qs, r, err := prepare(c, q.Root, q.Options)
		if err != nil {
			return nil, nil, err
		}
		if seen[r.ID] {
			return nil, nil, fmt.Errorf("workflow %s: %w: its ID is in the batch twice", r.ID, job.ErrInvalid)
		}
		seen[r.ID] = true
		if s == nil {
			s = qs
		}
		rs[i] = r
	}
	return s, rs, nil
}

// storeStart writes what new workflows' records need before they are
// stored: each one's open marker and spec (neither is visible before the
// record names the spec). A marker that exists already (the ID used
// before) is rewritten by markOpen.
func (s *store) storeStart(ctx context.Context, rs []*record) error {
	puts := make([]backends.PutKVParams, 0, 2*len(rs))
	named := make([]func(version int64), len(rs))
	at, _ := s.now().MarshalText()
	for i, r := range rs {
		spec, nm, err := s.newSpec(r)
		if err != nil {
			return err
		}
		named[i] = nm
		puts = append(puts, backends.PutKVParams{Key: openKey(r.ID), Value: at, Now: s.now()}, spec)
	}
	vs, err := s.putAll(ctx, puts)
	if err != nil {
		return fmt.Errorf("%s: open marker and spec: %w", about(rs), err)
	}
	var reopen []*record
	for i, r := range rs {
		if vs[2*i+1] == 0 { // a new token's key cannot exist
			return fmt.Errorf("workflow %s: spec: %w: its new key exists", r.ID, job.ErrConflict)
		}
		named[i](vs[2*i+1])
		if vs[2*i] == 0 {
			reopen = append(reopen, r)
		}
	}
	return allAtOnce(len(reopen), func(i int) error { return s.markOpen(ctx, reopen[i].ID) })
}

// starting is a new workflow's record as written, state Starting.
type starting struct {
	r       *record
	version int64
}

// storeRecords writes new workflows' records, state Starting, and fills
// in refs: the records it wrote are returned, the ones whose ID is taken
// are returned apart, their refs Duplicates.
func (s *store) storeRecords(ctx context.Context, rs []*record, refs []Ref) (fresh []starting, taken []*record, err error) {
	puts := make([]backends.PutKVParams, len(rs))
	for i, r := range rs {
		b, err := r.encode()
		if err != nil {
			return nil, nil, err
		}
		puts[i] = backends.PutKVParams{Key: key(r.ID), Value: b, Now: s.now()}
	}
	vs, err := s.putAll(ctx, puts)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", about(rs), &queue.OutcomeUnknownError{IDs: idsOf(rs), Err: err})
	}
	for i, r := range rs {
		if vs[i] == 0 {
			refs[i] = Ref{ID: r.ID, Duplicate: true}
			taken = append(taken, r)
			continue
		}
		refs[i] = Ref{ID: r.ID}
		fresh = append(fresh, starting{r, vs[i]})
	}
	return fresh, taken, nil
}

// startSteps enqueues new workflows' first steps in one EnqueueMany and
// writes their records Running, as advance would from the records just
// written, without reading them again. A refusal stored no job (the
// enqueue is all or nothing), so the records are deleted; a record
// written meanwhile (by a Cancel, or the reconciler) is advanced alone.
//
// Past enqueueBatch first steps, and when a later batch cannot be
// refused for a reason the first would not meet (fillable), only the
// first batch goes in before the write, and the records are written
// Filling: the rest follow in batches (fill), so that workers start on a
// 10,000-member group while the rest of it goes in.
func (s *store) startSteps(ctx context.Context, fresh []starting) error {
	now := s.now()
	rs := make([]*record, len(fresh))
	var all []pendingStep
	for i, f := range fresh {
		rs[i] = f.r
		ready, _ := f.r.settle(now)
		for _, st := range ready {
			all = append(all, pendingStep{wf: i, st: st})
		}
	}
	first, rest := all, []pendingStep(nil)
	if len(all) > enqueueBatch && s.fillable(ctx, all) {
		largestFirst(all)
		first, rest = all[:enqueueBatch], all[enqueueBatch:]
	}
	unknown := func(err error) error {
		return fmt.Errorf("%s: %w", about(rs), &queue.OutcomeUnknownError{IDs: idsOf(rs), Err: err})
	}
	if _, err := s.c.EnqueueMany(ctx, requests(rs, first)...); err != nil {
		if refused(err) && allAtOnce(len(fresh), func(i int) error { return s.remove(ctx, fresh[i].r, fresh[i].version) }) == nil {
			return fmt.Errorf("%s: %w", about(rs), err)
		}
		return unknown(err)
	}
	for _, p := range all {
		p.st.State, p.st.HasJob, p.st.Enqueued = StepEnqueued, true, now
	}
	for _, p := range rest {
		rs[p.wf].Filling = true
	}
	puts := make([]backends.PutKVParams, len(fresh))
	for i, f := range fresh {
		f.r.State = Running
		b, err := f.r.encode()
		if err != nil {
			return unknown(err) // stored Starting, its steps enqueued: the reconciler completes it
		}
		puts[i] = backends.PutKVParams{Key: key(f.r.ID), Value: b, IfVersion: f.version, Now: now}
	}
	vs, err := s.putAll(ctx, puts)
	if err != nil {
		return unknown(err)
	}
	var moved []int
	for i, v := range vs {
		if v == 0 {
			moved = append(moved, i)
		}
	}
	err = allAtOnce(len(moved), func(j int) error {
		// Advanced alone from the record as stored, Starting: that
		// enqueues every first step, those not sent too.
		i := moved[j]
		mine := map[string]bool{}
		for _, p := range all {
			if p.wf == i {
				mine[p.st.Name] = true
			}
		}
		if _, err := s.advanceMine(ctx, fresh[i].r.ID, nil, mine, nil); err != nil {
			return fmt.Errorf("workflow %s: %w", fresh[i].r.ID, &queue.OutcomeUnknownError{IDs: []string{fresh[i].r.ID}, Err: err})
		}
		return nil
	})
	if err != nil {
		return err
	}
	rest = slices.DeleteFunc(rest, func(p pendingStep) bool { return vs[p.wf] == 0 })
	return s.fill(ctx, rs, rest)
}

// putAll writes puts, on a backends.KVBatcher by PutKVMany (kvBatch keys
// a call), else each by PutKV, flushers at once. It returns each put's
// new version, 0 where its compare-and-set lost; an error leaves every
// put's outcome unknown.
func (s *store) putAll(ctx context.Context, puts []backends.PutKVParams) ([]int64, error) {
	if s.batch != nil {
		vs := make([]int64, 0, len(puts))
		for part := range slices.Chunk(puts, kvBatch) {
			v, err := s.batch.PutKVMany(ctx, backends.PutKVManyParams{Puts: part})
			if err != nil {
				return nil, err
			}
			vs = append(vs, v...)
		}
		return vs, nil
	}
	vs := make([]int64, len(puts))
	err := allAtOnce(len(puts), func(i int) error {
		v, err := s.kv.PutKV(ctx, puts[i])
		if errors.Is(err, job.ErrConflict) {
			return nil
		}
		vs[i] = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return vs, nil
}

// about names workflows in an error: "workflow ID", or the first and how
// many more.
func about(rs []*record) string {
	if len(rs) == 1 {
		return "workflow " + rs[0].ID
	}
	return fmt.Sprintf("workflows %s and %d more", rs[0].ID, len(rs)-1)
}

func idsOf(rs []*record) []string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return ids
}
