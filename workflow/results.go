package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
)

// Output is one finished step's result as stored: its job's encoded result
// when it is done, else Err.
type Output struct {
	Step  string
	State StepState
	Data  []byte // the encoded result (the task's codec, JSON by default)
	// Err is nil for a done step. For a dead step it wraps ErrStepFailed
	// and says the job's last error; for a cancelled one it wraps
	// ErrStepCancelled and says why.
	Err error
}

// Decode decodes the step's result into v with the JSON codec, the
// default; a task with another codec decodes Data with it. A failed step
// returns its Err.
//
// Both errors are retry.Permanent: no attempt of the handler can change a
// finished step's outcome or a result that does not decode as what it
// expects, so a handler that returns them is dead-lettered at once with
// the reason, and the rest of the workflow follows its failure policy.
//
// A dependency whose job is not finished (job.ErrNotFinished), although
// the workflow's record had it finished, is waited for: the error also
// snoozes the handler for notFinishedWait, using no attempt. That happens
// when a store undid the job's end after the engine acted on it (a
// failover on asynchronous replication, a Redis restart under
// appendfsync everysec): the job runs again and finishes again, and its
// dependents then read what it returned that time.
func (o Output) Decode(v any) error {
	return o.decode(func(b []byte) error { return json.Unmarshal(b, v) })
}

// notFinishedWait is how long a step waits for a dependency found not
// finished before it reads the results again: the dependency's rerun
// starts once its lost lease ends, seconds away.
const notFinishedWait = time.Second

func (o Output) decode(dec func([]byte) error) error {
	if errors.Is(o.Err, job.ErrNotFinished) {
		return fmt.Errorf("%w: %w", retry.Snooze(notFinishedWait), o.Err)
	}
	if o.Err != nil {
		return retry.Permanent(o.Err)
	}
	if len(o.Data) == 0 {
		return nil
	}
	if err := dec(o.Data); err != nil {
		return retry.Permanent(fmt.Errorf("%w: result of step %s: %w", job.ErrMalformedPayload, o.Step, err))
	}
	return nil
}

// stepKey is the context key of a running step's view of its workflow.
type stepKey struct{}

// stepView is what the engine's middleware puts in a step's context: no
// backend call is made until the handler asks for a result.
type stepView struct {
	s        *store
	workflow string
	step     string
	deps     []string // from the job's header; nil: read them from the record
}

// Current returns the workflow ID and step name of the step a handler
// runs, or ok=false outside a workflow (the engine's middleware must be
// installed on the worker: Engine.Install).
func Current(ctx context.Context) (workflowID, step string, ok bool) {
	v, ok := ctx.Value(stepKey{}).(*stepView)
	if !ok {
		return "", "", false
	}
	return v.workflow, v.step, true
}

// Results returns the outputs of the steps the running step depends on,
// in the order of its dependencies (a group's order, for a Chord's
// callback). Outside a workflow the error wraps ErrNotInWorkflow.
//
// Results come through the context, not as arguments, so that a task
// stays the same task outside workflows: its argument type is what its
// callers send, and a workflow adds to it without changing it.
func Results(ctx context.Context) ([]Output, error) {
	v, ok := ctx.Value(stepKey{}).(*stepView)
	if !ok {
		return nil, ErrNotInWorkflow
	}
	var r *record // read only when needed: it may hold 10,000 steps
	record := func() (*record, error) {
		if r != nil {
			return r, nil
		}
		var err error
		r, _, err = v.s.load(ctx, v.workflow)
		return r, err
	}
	deps := v.deps
	if deps == nil {
		r, err := record()
		if err != nil {
			return nil, err
		}
		st := r.step(v.step)
		if st == nil {
			return nil, fmt.Errorf("%w: workflow %s has no step %q", job.ErrNotFound, v.workflow, v.step)
		}
		deps = st.Deps
	}
	out := make([]Output, len(deps))
	missing, err := v.s.jobOutputs(ctx, v.workflow, deps, out)
	if err != nil {
		return nil, err
	}
	for _, i := range missing {
		// No job: cancelled or refused before it had one; the record
		// says why.
		r, err := record()
		if err != nil {
			return nil, err
		}
		st := r.step(deps[i])
		if st == nil {
			return nil, fmt.Errorf("%w: workflow %s has no step %q", job.ErrNotFound, v.workflow, deps[i])
		}
		out[i] = recordOutput(st)
	}
	return out, nil
}

// readers bounds the concurrent job reads of one Results call: a chord's
// callback reads every member's job.
const readers = 16

// jobOutputs reads the jobs of steps into out, readers at a time, and
// returns the positions of the steps that have no job.
func (s *store) jobOutputs(ctx context.Context, workflowID string, steps []string, out []Output) ([]int, error) {
	var (
		mu      sync.Mutex
		missing []int
		errs    []error
		wg      sync.WaitGroup
		next    atomic.Int64
	)
	for range min(readers, len(steps)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(steps) || ctx.Err() != nil {
					return
				}
				rec, err := s.in.GetJob(ctx, backends.GetJobParams{ID: JobID(workflowID, steps[i])})
				switch {
				case err == nil:
					out[i] = jobOutput(steps[i], rec)
				case errors.Is(err, job.ErrNotFound):
					mu.Lock()
					missing = append(missing, i)
					mu.Unlock()
				default:
					mu.Lock()
					errs = append(errs, fmt.Errorf("step %s: %w", steps[i], err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return missing, ctx.Err()
}

// recordOutput is the output of a step that has no job.
func recordOutput(st *stepRecord) Output {
	o := Output{Step: st.Name, State: st.State}
	switch st.State {
	case StepCancelled:
		o.Err = fmt.Errorf("%w: step %s: %s", ErrStepCancelled, st.Name, st.Reason)
	case StepDead:
		o.Err = fmt.Errorf("%w: step %s: %s", ErrStepFailed, st.Name, st.Reason)
	case StepDone:
		o.Err = fmt.Errorf("%w: step %s is done but its job, with its result, is no longer kept", job.ErrNotFound, st.Name)
	default:
		o.Err = fmt.Errorf("%w: step %s is %s", job.ErrNotFinished, st.Name, st.State)
	}
	return o
}

// jobOutput is the output of a step from its job's record.
func jobOutput(step string, rec *job.Record) Output {
	o := Output{Step: step, State: stepStateOf(rec.State)}
	switch rec.State {
	case job.Done:
		o.Data = rec.Result
	case job.Dead:
		reason := "no reason recorded"
		if le := rec.LastError(); le != nil {
			reason = le.Error
		}
		o.Err = fmt.Errorf("%w: step %s: %s", ErrStepFailed, step, reason)
	case job.Cancelled:
		o.Err = fmt.Errorf("%w: step %s: its job was cancelled", ErrStepCancelled, step)
	default:
		o.Err = fmt.Errorf("%w: step %s is %s", job.ErrNotFinished, step, rec.State)
	}
	return o
}

// Result decodes the result of step, which the running step depends on,
// as R (JSON, the default codec; ResultOf takes the task's own). A failed
// dependency (the step allows failure) returns an error wrapping
// ErrStepFailed or ErrStepCancelled with its reason.
func Result[R any](ctx context.Context, step string) (R, error) {
	var out R
	outs, err := Results(ctx)
	if err != nil {
		return out, err
	}
	for _, o := range outs {
		if o.Step == step {
			return out, o.Decode(&out)
		}
	}
	_, me, _ := Current(ctx)
	return out, fmt.Errorf("%w: step %s does not depend on %q", job.ErrInvalid, me, step)
}

// ResultOf is Result decoded with task t's codec, for a dependency whose
// task encodes with something other than JSON.
func ResultOf[A, R any](ctx context.Context, t *queue.Task[A, R], step string) (R, error) {
	var out R
	outs, err := Results(ctx)
	if err != nil {
		return out, err
	}
	for _, o := range outs {
		if o.Step != step {
			continue
		}
		return out, o.decode(func(b []byte) error { return t.Options().Codec.Decode(b, &out) })
	}
	return out, fmt.Errorf("%w: the running step does not depend on %q", job.ErrInvalid, step)
}

// Previous decodes the result of the one step the running step depends
// on: a Chain's previous step. A step with no dependency or several (after
// a Group: use All) gets an error wrapping job.ErrInvalid.
func Previous[R any](ctx context.Context) (R, error) {
	var out R
	outs, err := Results(ctx)
	if err != nil {
		return out, err
	}
	if len(outs) != 1 {
		_, me, _ := Current(ctx)
		return out, fmt.Errorf("%w: step %s depends on %d steps, not one", job.ErrInvalid, me, len(outs))
	}
	return out, outs[0].Decode(&out)
}

// All decodes the results of every step the running step depends on, in
// order: a Chord callback's members. The first failed dependency's error
// is returned with the results decoded so far; a step allowing failure
// that wants the others reads Results instead.
func All[R any](ctx context.Context) ([]R, error) {
	outs, err := Results(ctx)
	if err != nil {
		return nil, err
	}
	res := make([]R, 0, len(outs))
	for _, o := range outs {
		var v R
		if err := o.Decode(&v); err != nil {
			return res, err
		}
		res = append(res, v)
	}
	return res, nil
}

// Sentinel errors callers branch on.
var (
	// ErrStepFailed: a step ended dead (or its job was refused).
	ErrStepFailed = errors.New("conveyor: workflow step failed")
	// ErrStepCancelled: a step was cancelled, or never ran because a
	// dependency failed or the workflow was cancelled.
	ErrStepCancelled = errors.New("conveyor: workflow step cancelled")
	// ErrNotInWorkflow: the handler does not run a workflow step (or the
	// engine's middleware is not installed on its worker).
	ErrNotInWorkflow = errors.New("conveyor: not running in a workflow")
	// ErrWorkflowFailed: Wait's workflow ended Failed or Cancelled.
	ErrWorkflowFailed = errors.New("conveyor: workflow failed")
)
