package queue

import (
	"context"
	"fmt"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// debounced adds o.Debounce, if set, to r, checking what it cannot be
// combined with.
func (t *Task[A, R]) debounced(r Request, o EnqueueOptions) Request {
	d := o.Debounce
	if d == nil {
		return r
	}
	switch {
	case d.Key == "" || d.Window <= 0 || d.MaxWait < 0:
		r.err = fmt.Errorf("%w: task %s: Debounce needs a Key and a positive Window, and no negative MaxWait", job.ErrInvalid, t.name)
	case r.ins.UniqueKey != "":
		r.err = fmt.Errorf("%w: task %s: a debounced job has no unique key (its debounce key is one)", job.ErrInvalid, t.name)
	case !r.ins.RunAt.IsZero():
		r.err = fmt.Errorf("%w: task %s: a debounced job's start is its window's end, not RunAt or Delay", job.ErrInvalid, t.name)
	}
	r.deb = &backends.DebounceParams{Key: t.name + ":" + d.Key, Window: d.Window, MaxWait: d.MaxWait}
	return r
}

// debounceOf returns the debounce of the batch, nil if it has none: a
// debounced request is enqueued alone, since replacing a waiting job and
// inserting others cannot be one all-or-nothing call.
func debounceOf(reqs []Request, p backends.EnqueueParams) (*backends.DebounceParams, error) {
	for i, r := range reqs {
		if r.deb == nil {
			continue
		}
		if len(reqs) != 1 {
			return nil, fmt.Errorf("%w: request %d is debounced; a debounced request is enqueued alone", job.ErrInvalid, i)
		}
		d := *r.deb
		d.Job = p.Jobs[0]
		return &d, nil
	}
	return nil, nil
}

// insert sends p to the backend: Enqueue, or Debounce for a debounced
// request.
func (c *Client) insert(ctx context.Context, p backends.EnqueueParams, deb *backends.DebounceParams) ([]backends.EnqueueResult, error) {
	if deb == nil {
		return c.b.Enqueue(ctx, p)
	}
	d, ok := c.b.(backends.Debouncer)
	if !ok {
		return nil, fmt.Errorf("%w: debounced enqueue on %T", job.ErrUnsupported, c.b)
	}
	res, err := d.Debounce(ctx, *deb)
	if err != nil {
		return nil, err
	}
	return []backends.EnqueueResult{res}, nil
}
