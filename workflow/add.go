package workflow

import (
	"context"
	"fmt"

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
	if _, err := s.update(ctx, id, func(r *record) (bool, error) { return true, r.add(node, o) }); err != nil {
		return fmt.Errorf("workflow %s: add: %w", id, err)
	}
	_, err = s.advance(ctx, id, nil) // the added steps with nothing to wait for start now
	return err
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
		st.Deps = dedupe(append(st.Deps, sinks...))
	}
	if err := check(b.steps, b.index); err != nil {
		return err
	}
	r.Steps = b.steps
	r.link()
	return nil
}
