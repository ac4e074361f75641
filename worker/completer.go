package worker

import (
	"context"
	"time"

	"github.com/conveyorhq/conveyor/backends"
)

// completer records the completions of jobs that finish close together in
// one BatchCompleter call: a group commit. It never waits to fill a batch —
// a lone completion is written at once — but while one batch is being
// written the next one gathers, so batches grow with the load.
type completer struct {
	bc   backends.BatchCompleter
	reqs chan completion
}

type completion struct {
	p    backends.CompleteParams
	done chan error
}

const maxCompleteBatch = 200

func newCompleter(bc backends.BatchCompleter) *completer {
	return &completer{bc: bc, reqs: make(chan completion, maxCompleteBatch)}
}

// run writes batches until stop is closed. Callers stop sending before
// that: the worker closes stop only once every job has finished.
func (c *completer) run(stop <-chan struct{}) {
	batch := make([]completion, 0, maxCompleteBatch)
	for {
		select {
		case r := <-c.reqs:
			batch = append(batch[:0], r)
		case <-stop:
			return
		}
	gather:
		for len(batch) < maxCompleteBatch {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		c.flush(batch)
	}
}

func (c *completer) flush(batch []completion) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := backends.CompleteManyParams{Jobs: make([]backends.CompleteParams, len(batch))}
	for i, r := range batch {
		p.Jobs[i] = r.p
	}
	errs, err := c.bc.CompleteMany(ctx, p)
	for i, r := range batch {
		if err != nil {
			r.done <- err
		} else {
			r.done <- errs[i]
		}
	}
}

// complete queues one completion and waits for its batch to be written.
func (c *completer) complete(ctx context.Context, p backends.CompleteParams) error {
	done := make(chan error, 1)
	select {
	case c.reqs <- completion{p: p, done: done}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
