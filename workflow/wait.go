package workflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
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
		loaded := time.Now()
		timer := time.NewTimer(poll)
		woken := false
	wait:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			case <-timer.C:
				break wait
			case _, ok := <-events:
				if !ok {
					events = nil
					continue
				}
				// A finished job anywhere: look again soon, but read the
				// record at most every debounce however busy the backend.
				if !woken {
					woken = true
					timer.Reset(max(0, debounce-time.Since(loaded)))
				}
			}
		}
		if !woken {
			poll = min(2*poll, time.Second)
		}
	}
}

// debounce is the least time between two reads of the record by Wait
// when job-finished events keep coming.
const debounce = 5 * time.Millisecond

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

// List returns the workflows whose record is kept, oldest first, with
// their steps' states: all of them, or those in the given states (say
// Running, for a dashboard's list of what is under way). It reads every
// kept record, so it is for operators, not for a hot path.
func List(ctx context.Context, c *queue.Client, states ...State) ([]*Info, error) {
	s, err := newStore(c, nil, 0)
	if err != nil {
		return nil, err
	}
	kvs, err := s.kv.ListKV(ctx, backends.ListKVParams{Prefix: keyPrefix, Now: s.now()})
	if err != nil {
		return nil, fmt.Errorf("workflow: list: %w", err)
	}
	var out []*Info
	for _, kv := range kvs {
		r, err := s.decode(ctx, kv.Value)
		if errors.Is(err, job.ErrNotFound) {
			continue // deleted, or an Add replaced its spec, since the list
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kv.Key, err)
		}
		if len(states) == 0 || slices.Contains(states, r.State) {
			out = append(out, r.info())
		}
	}
	slices.SortStableFunc(out, func(a, b *Info) int { return a.Created.Compare(b.Created) })
	return out, nil
}
