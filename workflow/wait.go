package workflow

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/queue"
)

// Wait blocks until workflow id has finished and returns its exit steps'
// outputs (the steps nothing depends on), in the workflow's order. A
// workflow that ended Failed or Cancelled returns them too, with an error
// wrapping ErrWorkflowFailed. It is woken by the backend's notifications
// where it has them and polls the record otherwise (from 10ms, doubling,
// to 1s), so an engine must be running somewhere to move the workflow on.
func Wait(ctx context.Context, c *queue.Client, id string) ([]Output, error) {
	s, err := newStore(c, nil, 0)
	if err != nil {
		return nil, err
	}
	var events <-chan backends.Event
	if n, ok := c.Backend().(backends.Notifier); ok {
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if ch, err := n.Listen(lctx, backends.ListenParams{Kinds: []backends.EventKind{backends.JobFinished}}); err == nil {
			events = ch
		}
	}
	poll := 10 * time.Millisecond
	for {
		r, _, err := s.load(ctx, id)
		if err != nil {
			return nil, err
		}
		if r.State.Final() {
			return s.outputs(ctx, r)
		}
		timer := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
			poll = min(2*poll, time.Second)
		case _, ok := <-events:
			timer.Stop()
			if !ok {
				events = nil
			}
		}
	}
}

// outputs returns a final workflow's exit steps' outputs.
func (s *store) outputs(ctx context.Context, r *record) ([]Output, error) {
	sinks := r.sinks()
	names := make([]string, len(sinks))
	for i, st := range sinks {
		names[i] = st.Name
	}
	out := make([]Output, len(sinks))
	missing, err := s.jobOutputs(ctx, r.ID, names, out)
	if err != nil {
		return nil, err
	}
	for _, i := range missing {
		out[i] = recordOutput(sinks[i])
	}
	if r.State != Done {
		return out, fmt.Errorf("%w: workflow %s is %s", ErrWorkflowFailed, r.ID, r.State)
	}
	return out, nil
}
