package workflow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

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
	return s.cancelJobs(ctx, r)
}

// cancelJobs cancels the jobs of cancelled workflow r's unfinished steps
// by their IDs, also of those the record holds as cancelled before they
// got one (an advance, or a fill, may have enqueued one just now), and
// advances r with what it cancelled.
func (s *store) cancelJobs(ctx context.Context, r *record) error {
	if r.State.Final() {
		return nil
	}
	obs := map[string]StepState{}
	for _, st := range r.Steps {
		if st.State == StepEnqueued || (st.State == StepCancelled && !st.HasJob) {
			js, err := s.c.Cancel(ctx, JobID(r.ID, st.Name))
			switch {
			case err == nil && js == job.Cancelled:
				obs[st.Name] = StepCancelled // a running one is reported by its worker
			case err != nil && !errors.Is(err, job.ErrNotFound) && !errors.Is(err, job.ErrFinished):
				return fmt.Errorf("workflow %s: cancel step %s: %w", r.ID, st.Name, err)
			}
		}
	}
	_, err := s.advance(ctx, r.ID, obs)
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
