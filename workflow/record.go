package workflow

import (
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// State is a workflow's state as a whole.
type State string

// The workflow states. Done, Failed and Cancelled are final.
const (
	// Starting: the record is stored and its first steps are being
	// enqueued; a crash here is completed by the reconciler (or by an
	// Enqueue retried with the same ID).
	Starting State = "starting"
	// Running: some step has not finished.
	Running State = "running"
	// Done: every step finished and every exit step is done.
	Done State = "done"
	// Failed: every step finished and some exit step did not end done.
	Failed State = "failed"
	// Cancelled: Cancel was called and every step has since finished.
	Cancelled State = "cancelled"
)

// Final reports whether the workflow has finished.
func (s State) Final() bool { return s == Done || s == Failed || s == Cancelled }

// StepState is one step's state.
type StepState string

// The step states. Done, Dead and Cancelled are final.
const (
	// StepBlocked: waiting for its dependencies; it has no job yet.
	StepBlocked StepState = "blocked"
	// StepEnqueued: its job exists and has not finished (pending,
	// scheduled, running or retrying).
	StepEnqueued StepState = "enqueued"
	// StepDone: its job is done; its result is the job's result.
	StepDone StepState = "done"
	// StepDead: its job was dead-lettered.
	StepDead StepState = "dead"
	// StepCancelled: its job was cancelled, or it never got one because a
	// dependency failed or the workflow was cancelled (Reason says which).
	StepCancelled StepState = "cancelled"
)

// stepGone is what the reconciler observes of an enqueued step whose job
// no longer exists; it is recorded as StepDead with the reason.
const stepGone StepState = "gone"

// Final reports whether the step has finished.
func (s StepState) Final() bool { return s == StepDone || s == StepDead || s == StepCancelled }

// failed reports whether a finished step ended other than done.
func (s StepState) failed() bool { return s == StepDead || s == StepCancelled }

// stepStateOf maps a job's state to its step's.
func stepStateOf(st job.State) StepState {
	switch st {
	case job.Done:
		return StepDone
	case job.Dead:
		return StepDead
	case job.Cancelled:
		return StepCancelled
	}
	return StepEnqueued
}

// recordFormat is the stored record's format version, checked on load so
// that another format is refused rather than misread. Format 2 stores the
// record in two parts (stored.go).
const recordFormat = 2

// record is the durable state of one workflow: its state is the value of
// the KV key workflow/<id>, changed only by compare-and-set, and names
// its spec (stored.go), which holds what each step is.
type record struct {
	Format          int
	ID              string
	State           State
	AllowFailure    bool
	CancelRequested bool
	Tx              bool // enqueued in the caller's transaction: its roots prove the commit
	Created         time.Time
	Finished        time.Time
	Spec            string // the token of its spec's key
	Grown           bool   // an Add replaced its spec: others may be left to sweep
	// Filling: Running, its first steps all marked enqueued, while its
	// Enqueue still enqueues those past the first batch (startSteps). A
	// step of it whose job is missing is not yet gone: past StartGrace
	// the reconciler enqueues it.
	Filling bool
	Steps   []*stepRecord
	graph   // of Steps, from its spec
}

// stepRecord is one step in the record: what it is (shared by every load
// of the spec: never changed in place) and its state.
type stepRecord struct {
	*stepDef
	State    StepState
	Reason   string // why it was cancelled without a job
	HasJob   bool
	Enqueued time.Time
	Finished time.Time
}

// JobID returns the ID of a step's job: deterministic, so that enqueueing
// it again is a duplicate, never a second job.
func JobID(workflowID, step string) string { return "wf-" + workflowID + "-" + step }

// key is the KV key of a workflow's record.
func key(id string) string { return keyPrefix + id }

const keyPrefix = "workflow/"

// link builds the indexes of r's steps, for a record not loaded (a new
// one, or one Add changed).
func (r *record) link() {
	defs := make([]*stepDef, len(r.Steps))
	for i, st := range r.Steps {
		defs[i] = st.stepDef
	}
	r.graph = newSpec(defs).graph
}

func (r *record) step(name string) *stepRecord {
	if i, ok := r.index[name]; ok {
		return r.Steps[i]
	}
	return nil
}

// observe folds in what a step's job is now (the job is the truth about a
// step that has one). A finished step whose job is waiting again was
// replayed: it is enqueued once more, and the dependents its failure had
// cancelled without a job wait for it again. It reports a change.
func (r *record) observe(name string, st StepState, now time.Time) bool {
	s := r.step(name)
	if st == stepGone {
		if s == nil || s.State != StepEnqueued {
			return false
		}
		s.State, s.HasJob, s.Finished = StepDead, false, now
		s.Reason = "its job is gone (deleted, or pruned before the workflow saw it finish)"
		return true
	}
	if s == nil || s.State == st {
		return false
	}
	if st != StepEnqueued && !st.Final() {
		return false
	}
	was := s.State
	s.State, s.HasJob = st, true
	if st.Final() {
		s.Finished = now
	} else {
		s.Finished = time.Time{}
	}
	if was.failed() && !st.failed() {
		r.reopen(r.index[name])
	}
	return true
}

// reopen puts back to blocked the dependents of step i that were cancelled
// without a job because of a failure, transitively, and the workflow back
// to running.
func (r *record) reopen(i int) {
	if !r.CancelRequested && r.State.Final() {
		r.State, r.Finished = Running, time.Time{}
	}
	for _, d := range r.dependents[i] {
		s := r.Steps[d]
		if s.State == StepCancelled && !s.HasJob && !r.CancelRequested {
			s.State, s.Reason, s.Finished = StepBlocked, "", time.Time{}
			r.reopen(d)
		}
	}
}

// settle moves blocked steps on: cancelled when the workflow is being
// cancelled or a dependency failed (unless the step allows failure),
// returned as ready when every dependency has finished. It reports whether
// the record changed.
func (r *record) settle(now time.Time) (ready []*stepRecord, changed bool) {
	for again := true; again; {
		again = false
		for i, s := range r.Steps {
			if s.State != StepBlocked {
				continue
			}
			if r.CancelRequested {
				s.State, s.Reason, s.Finished = StepCancelled, "workflow cancelled", now
				changed = true
				continue
			}
			finished, failed := true, -1
			for _, d := range r.deps[i] {
				ds := r.Steps[d]
				if !ds.State.Final() {
					finished = false
					break
				}
				if ds.State.failed() && failed < 0 {
					failed = d
				}
			}
			if !finished {
				continue
			}
			if failed >= 0 && !s.AllowFailure && !r.AllowFailure {
				fs := r.Steps[failed]
				s.State, s.Finished = StepCancelled, now
				s.Reason = fmt.Sprintf("dependency %s ended %s", fs.Name, fs.State)
				changed, again = true, true // its dependents may now be cancelled too
				continue
			}
			ready = append(ready, s)
		}
	}
	return ready, changed
}

// finish sets the workflow's final state once every step has finished. It
// reports a change.
func (r *record) finish(now time.Time) bool {
	if r.State.Final() || r.State == Starting {
		return false
	}
	for _, s := range r.Steps {
		if !s.State.Final() {
			return false
		}
	}
	r.State, r.Finished = Done, now
	switch {
	case r.CancelRequested:
		r.State = Cancelled
	default:
		for i, s := range r.Steps {
			if len(r.dependents[i]) == 0 && s.State != StepDone {
				r.State = Failed
				break
			}
		}
	}
	return true
}

// sinks returns the exit steps: those no step depends on.
func (r *record) sinks() []*stepRecord {
	var out []*stepRecord
	for i, s := range r.Steps {
		if len(r.dependents[i]) == 0 {
			out = append(out, s)
		}
	}
	return out
}
