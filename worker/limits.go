package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
)

// flowState is the worker's side of flow control: the gate on the
// backend's limits and the concurrency slots its running jobs hold.
type flowState struct {
	gate *flow.Gate // nil: the backend holds no limits
	mu   sync.Mutex
	held map[string]flow.Ticket // by job ID, jobs holding a slot
	// quiet holds, per queue whose own rate limit is out of tokens, the
	// time of its next token: fetching before then would only postpone.
	quiet map[string]time.Time
}

// initLimits opens the gate on the backend's limits and refuses to start
// when a task or queue has a limit the backend cannot hold cluster-wide:
// limiting each process on its own would let every added worker raise it.
// Called by start with w.mu held.
func (w *Worker) initLimits() error {
	w.flow.held = map[string]flow.Ticket{}
	w.flow.quiet = map[string]time.Time{}
	gate, gerr := flow.NewGate(w.b, nil)
	w.flow.gate = gate
	check := func(what string, r *flow.RateLimit, c *flow.ConcurrencyLimit) error {
		if r == nil && c == nil {
			return nil
		}
		if gerr != nil {
			return fmt.Errorf("worker: %s has a limit: %w", what, gerr)
		}
		if r != nil {
			if err := r.Validate(); err != nil {
				return fmt.Errorf("worker: %s: %w", what, err)
			}
		}
		if c != nil {
			if err := c.Validate(); err != nil {
				return fmt.Errorf("worker: %s: %w", what, err)
			}
		}
		return nil
	}
	for name, h := range w.handlers {
		o := h.def.Options()
		if err := check("task "+name, o.RateLimit, o.ConcurrencyLimit); err != nil {
			return err
		}
	}
	for _, q := range w.cfg.Queues {
		if err := check("queue "+q.Name, q.RateLimit, nil); err != nil {
			return err
		}
	}
	return nil
}

// limitsOf returns the limits rec's delivery must pass: its queue's rate
// limit, read now so that Reconfigure changes it at run time, then its
// task's.
func (w *Worker) limitsOf(rec *job.Record, opts queue.TaskOptions) (lim flow.Limits, queueLimit string) {
	for _, q := range w.live().Queues {
		if q.Name == rec.Queue && q.RateLimit != nil {
			ql := *q.RateLimit
			if ql.Name == "" {
				ql.Name = "queue:" + q.Name
			}
			lim.Rates = append(lim.Rates, ql)
			queueLimit = ql.Name
		}
	}
	if opts.RateLimit != nil {
		lim.Rates = append(lim.Rates, *opts.RateLimit)
	}
	lim.Concurrency = opts.ConcurrencyLimit
	return lim, queueLimit
}

// admit decides whether rec runs now. nil: run it (releaseSlot gives its
// slot back afterwards). Otherwise an error for finish: a snooze for a job
// a limit holds back, ErrExpired (wrapped) for a job past its expiry.
func (w *Worker) admit(ctx context.Context, rec *job.Record, opts queue.TaskOptions) error {
	lim, queueLimit := w.limitsOf(rec, opts)
	if lim.Empty() {
		return flow.Expired(rec, time.Now())
	}
	if w.flow.gate == nil { // a limit added by Reconfigure on a backend without limits
		return fmt.Errorf("worker: limits of task %s: %w", rec.Task, job.ErrUnsupported)
	}
	t, err := w.flow.gate.Admit(ctx, rec, rec.Task, lim)
	var hb *flow.HeldBackError
	switch {
	case errors.As(err, &hb):
		if hb.Limit == queueLimit {
			w.flow.mu.Lock()
			w.flow.quiet[rec.Queue] = hb.Next
			w.flow.mu.Unlock()
		}
		// A snooze: postponed without an attempt or a delivery.
		return retry.Snooze(max(time.Until(hb.Until), time.Millisecond))
	case errors.Is(err, job.ErrConflict):
		// The limit's state was too contended to read: as good as full.
		return retry.Snooze(time.Duration(50+time.Now().UnixNano()%100) * time.Millisecond)
	case err != nil:
		return err
	}
	if lim.Concurrency != nil {
		w.flow.mu.Lock()
		w.flow.held[rec.ID] = t
		w.flow.mu.Unlock()
	}
	return nil
}

// queueQuiet reports whether queue q's own rate limit has no token before
// a time still to come: the fetch loop skips the queue until then.
func (w *Worker) queueQuiet(q string) bool {
	w.flow.mu.Lock()
	defer w.flow.mu.Unlock()
	return time.Now().Before(w.flow.quiet[q])
}

// releaseSlot gives back the slot rec's delivery holds, if any, once its
// handler has returned and its outcome is recorded.
func (w *Worker) releaseSlot(rec *job.Record) {
	w.flow.mu.Lock()
	t, ok := w.flow.held[rec.ID]
	delete(w.flow.held, rec.ID)
	w.flow.mu.Unlock()
	if ok {
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.LeaseDuration/3)
		defer cancel()
		t.Release(ctx)
	}
}

// renewSlots moves the slots of jobs whose leases a heartbeat extended to
// their new lease expiry, so a slot ends when its lease would.
func (w *Worker) renewSlots(res []backends.ExtendResult) {
	w.flow.mu.Lock()
	if len(w.flow.held) == 0 {
		w.flow.mu.Unlock()
		return
	}
	renew := map[flow.Ticket]time.Time{}
	for _, r := range res {
		if t, ok := w.flow.held[r.JobID]; ok && !r.Lost {
			renew[t] = r.ExpiresAt
		}
	}
	w.flow.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.LeaseDuration/3)
	defer cancel()
	for t, exp := range renew {
		if err := t.Renew(ctx, exp); err != nil {
			w.log.Warn("renewing a concurrency slot failed; it ends with the job's first lease", "err", err)
		}
	}
}
