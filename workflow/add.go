package workflow

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// AddOptions place the steps Add adds. Zero values mean the stated default.
type AddOptions struct {
	// After names steps of the workflow the added node's entry steps
	// depend on. Default none: they run at once.
	After []string
	// Before names steps of the workflow that wait for the added node's
	// exit steps as well as for their own dependencies, and then receive
	// their results too (after their own, in order). Each must still be
	// blocked. Default none.
	Before []string
}

// Add adds node to running workflow id: Sidekiq-style batches that grow
// while they run. With the batch's callback in AddOptions.Before, the
// callback runs once every member, also those added later, has finished.
// It fails with an error wrapping job.ErrInvalid when the workflow has
// finished or is being cancelled, a step in Before is no longer blocked,
// or the added steps are bad (names taken, unknown dependencies, a
// cycle), and then adds nothing.
func Add(ctx context.Context, c *queue.Client, id string, node Node, opts *AddOptions) error {
	var o AddOptions
	if opts != nil {
		o = *opts
	}
	s, err := newStore(c, nil, 0)
	if err != nil {
		return err
	}
	if err := s.add(ctx, id, node, o); err != nil {
		return fmt.Errorf("workflow %s: add: %w", id, err)
	}
	_, err = s.advance(ctx, id, nil) // the added steps with nothing to wait for start now
	return err
}

// add writes the grown workflow's spec under a new token, then its state
// naming it by compare-and-set: the state's write is what adds the steps,
// all or nothing. The spec it replaced is deleted; one that lost the
// compare-and-set too.
func (s *store) add(ctx context.Context, id string, node Node, o AddOptions) error {
	for range casAttempts {
		r, version, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		old := r.Spec
		if err := r.add(node, o); err != nil {
			return err
		}
		if err := s.putSpec(ctx, r); err != nil {
			return err
		}
		r.Grown = true
		if _, err := s.save(ctx, r, version); errors.Is(err, job.ErrConflict) {
			named, nerr := s.namesSpec(ctx, id, r.Spec)
			switch {
			case nerr != nil:
				return fmt.Errorf("the outcome is open: %w", nerr) // the spec is kept, swept when the workflow ends
			case named: // the conflict was this write's own, retried: it is done
				s.dropSpec(ctx, id, old)
				return nil
			}
			s.dropSpec(ctx, id, r.Spec)
			continue
		} else if err != nil {
			return err // the outcome is open: the spec is swept when the workflow ends
		}
		s.dropSpec(ctx, id, old)
		return nil
	}
	return fmt.Errorf("%w: the record kept changing under %d attempts", job.ErrConflict, casAttempts)
}

// add puts node's steps into the record, checked as Enqueue checks a
// whole workflow.
func (r *record) add(node Node, o AddOptions) error {
	switch {
	case r.State.Final() || r.State == Starting:
		return fmt.Errorf("%w: the workflow is %s", job.ErrInvalid, r.State)
	case r.CancelRequested:
		return fmt.Errorf("%w: the workflow is being cancelled", job.ErrInvalid)
	}
	for _, name := range o.Before {
		if st := r.step(name); st == nil || st.State != StepBlocked {
			return fmt.Errorf("%w: step %q is no blocked step of the workflow", job.ErrInvalid, name)
		}
	}
	b := &builder{index: map[string]int{}}
	for i, st := range r.Steps {
		b.index[st.Name] = i
	}
	b.steps = r.Steps
	sinks := node.add(b, o.After)
	if b.err != nil {
		return b.err
	}
	for _, name := range o.Before {
		st := r.Steps[b.index[name]]
		def := *st.stepDef // the loaded one is shared: never changed in place
		def.Deps = dedupe(append(slices.Clone(def.Deps), sinks...))
		st.stepDef = &def
	}
	if err := check(b.steps, b.index); err != nil {
		return err
	}
	r.Steps = b.steps
	r.link()
	return nil
}
