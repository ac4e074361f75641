package workflow

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	// nothing new was stored (a start a crash left half done is completed).
	Duplicate bool
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
// The backend must be a backends.KVStore and a backends.Inspector (every
// bundled backend is; AMQP with a store).
func Enqueue(ctx context.Context, c *queue.Client, root Node, opts *Options) (Ref, error) {
	s, r, err := prepare(c, root, opts)
	if err != nil {
		return Ref{}, err
	}
	if err := s.storeStart(ctx, r); err != nil {
		return Ref{}, err
	}
	b, err := r.encode()
	if err != nil {
		return Ref{}, err
	}
	version, err := s.saveEncoded(ctx, r, b, 0)
	switch {
	case errors.Is(err, job.ErrConflict):
		s.dropUnnamed(ctx, r.ID, r.Spec) // the ID is taken: the spec is no one's, unless the write was this one's
		return s.existing(ctx, r.ID)
	case err != nil:
		return Ref{}, fmt.Errorf("workflow %s: %w", r.ID, &queue.OutcomeUnknownError{IDs: []string{r.ID}, Err: err})
	}
	// Advanced from the state just written, not read again.
	written := &backends.KV{Key: key(r.ID), Value: b, Version: version}
	if _, err := s.advanceMine(ctx, r.ID, nil, map[string]bool{}, written); err != nil {
		if refused(err) {
			// Nothing of it is a job: the refused batch was all or nothing.
			if derr := s.remove(ctx, r, version); derr == nil {
				return Ref{}, fmt.Errorf("workflow %s: %w", r.ID, err)
			}
		}
		return Ref{}, fmt.Errorf("workflow %s: %w", r.ID, &queue.OutcomeUnknownError{IDs: []string{r.ID}, Err: err})
	}
	return Ref{ID: r.ID}, nil
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
	if err := s.storeStart(ctx, r); err != nil {
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

// existing answers an Enqueue whose ID is taken: a start left half done is
// completed, and the workflow returned as a duplicate.
func (s *store) existing(ctx context.Context, id string) (Ref, error) {
	r, _, err := s.load(ctx, id)
	if err != nil {
		return Ref{}, err
	}
	if r.State == Starting && !r.Tx {
		if _, err := s.advance(ctx, id, nil); err != nil {
			return Ref{}, fmt.Errorf("workflow %s: completing its start: %w", id, err)
		}
	}
	return Ref{ID: id, Duplicate: true}, nil
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

// Info is a workflow's status: the whole and every step.
type Info struct {
	ID              string
	State           State
	CancelRequested bool
	Created         time.Time
	Finished        time.Time // zero until final
	Steps           []StepInfo
}

// StepInfo is one step's status.
type StepInfo struct {
	Name  string
	Task  string
	Queue string
	Deps  []string
	State StepState
	// JobID is the step's job, set once it has one; the job's own record
	// (queue.Client.Job) has its attempts, errors and result.
	JobID        string
	Reason       string // why it was cancelled or marked dead without a job
	AllowFailure bool
	Enqueued     time.Time
	Finished     time.Time
	Sink         bool // an exit step: its result is part of the workflow's
}

// Status returns the state of workflow id and of each of its steps, as
// its record has them. A step whose job finished a moment ago may still
// show as enqueued until the engine has advanced the workflow.
func Status(ctx context.Context, c *queue.Client, id string) (*Info, error) {
	s, err := newStore(c, nil, 0)
	if err != nil {
		return nil, err
	}
	r, _, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	return r.info(), nil
}

func (r *record) info() *Info {
	in := &Info{ID: r.ID, State: r.State, CancelRequested: r.CancelRequested, Created: r.Created, Finished: r.Finished}
	for i, s := range r.Steps {
		si := StepInfo{Name: s.Name, Task: s.Spec.Task, Queue: s.Spec.Queue, Deps: s.Deps, State: s.State,
			Reason: s.Reason, AllowFailure: s.AllowFailure || r.AllowFailure, Enqueued: s.Enqueued, Finished: s.Finished,
			Sink: len(r.dependents[i]) == 0}
		if s.HasJob {
			si.JobID = JobID(r.ID, s.Name)
		}
		in.Steps = append(in.Steps, si)
	}
	return in
}

// Cancel cancels workflow id: steps not yet enqueued never start, waiting
// ones are cancelled, running ones have their handler's context cancelled
// at their worker's next heartbeat. The workflow is Cancelled once every
// step has finished. Cancelling a finished workflow is a no-op.
func Cancel(ctx context.Context, c *queue.Client, id string) error {
	s, err := newStore(c, nil, 0)
	if err != nil {
		return err
	}
	r, err := s.update(ctx, id, func(r *record) (bool, error) {
		if r.State.Final() || r.CancelRequested {
			return false, nil
		}
		r.CancelRequested = true
		r.settle(s.now())
		r.finish(s.now())
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("workflow %s: cancel: %w", id, err)
	}
	if r.State.Final() {
		return nil
	}
	// Every unfinished step's job by its ID, also those the record holds
	// as blocked: an advance may have enqueued one just now.
	obs := map[string]StepState{}
	for _, st := range r.Steps {
		if st.State == StepEnqueued || (st.State == StepCancelled && !st.HasJob) {
			js, err := s.c.Cancel(ctx, JobID(id, st.Name))
			switch {
			case err == nil && js == job.Cancelled:
				obs[st.Name] = StepCancelled // a running one is reported by its worker
			case err != nil && !errors.Is(err, job.ErrNotFound) && !errors.Is(err, job.ErrFinished):
				return fmt.Errorf("workflow %s: cancel step %s: %w", id, st.Name, err)
			}
		}
	}
	_, err = s.advance(ctx, id, obs)
	return err
}

// Replay runs a dead (or cancelled) step of workflow id again: its job is
// replayed (backends.Admin) and, once it is done, the dependents its
// failure had cancelled run. The workflow is Running again meanwhile.
func Replay(ctx context.Context, c *queue.Client, id, step string) error {
	s, err := newStore(c, nil, 0)
	if err != nil {
		return err
	}
	ad, ok := c.Backend().(backends.Admin)
	if !ok {
		return fmt.Errorf("%w: replay on %T", job.ErrUnsupported, c.Backend())
	}
	r, _, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	st := r.step(step)
	switch {
	case st == nil:
		return fmt.Errorf("%w: workflow %s has no step %q", job.ErrNotFound, id, step)
	case r.CancelRequested:
		return fmt.Errorf("%w: workflow %s was cancelled", job.ErrInvalid, id)
	case !st.State.failed() || !st.HasJob:
		return fmt.Errorf("%w: step %s of workflow %s is %s and has %s; only a dead or cancelled job is replayed",
			job.ErrInvalid, step, id, st.State, map[bool]string{true: "a job", false: "no job"}[st.HasJob])
	}
	if _, err := ad.ReplayJobs(ctx, backends.ReplayJobsParams{IDs: []string{JobID(id, step)}}); err != nil {
		return fmt.Errorf("workflow %s: replay step %s: %w", id, step, err)
	}
	// The job is waiting again; the record follows it.
	_, err = s.advance(ctx, id, map[string]StepState{step: StepEnqueued})
	return err
}
