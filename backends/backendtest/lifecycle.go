package backendtest

import (
	"context"
	"errors"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// calls are one call of every core method and of each capability the
// backend has, with plausible parameters, for the lifecycle cases.
func (h *harness) calls(q string, r *job.Record) map[string]func(context.Context) error {
	lease := r.Lease
	c := map[string]func(context.Context) error{
		"Enqueue": func(ctx context.Context) error {
			_, err := h.b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{h.ins(q, "late")}})
			return err
		},
		"Reserve": func(ctx context.Context) error {
			_, err := h.b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 1, Lease: longLease, Worker: "bt"})
			return err
		},
		"Extend": func(ctx context.Context) error {
			_, err := h.b.Extend(ctx, backends.ExtendParams{Leases: []job.Lease{lease}, Lease: longLease})
			return err
		},
		"Complete": func(ctx context.Context) error {
			return h.b.Complete(ctx, backends.CompleteParams{Lease: lease})
		},
		"Retry": func(ctx context.Context) error {
			return h.b.Retry(ctx, backends.RetryParams{Lease: lease, At: h.now()})
		},
		"DeadLetter": func(ctx context.Context) error {
			return h.b.DeadLetter(ctx, backends.DeadLetterParams{Lease: lease, Error: job.AttemptError{Error: "x"}})
		},
	}
	if in, ok := h.b.(backends.Inspector); ok {
		c["Cancel"] = func(ctx context.Context) error {
			_, err := h.b.Cancel(ctx, backends.CancelParams{JobID: r.ID})
			return err
		}
		c["GetJob"] = func(ctx context.Context) error {
			_, err := in.GetJob(ctx, backends.GetJobParams{ID: r.ID})
			return err
		}
		c["QueueStats"] = func(ctx context.Context) error {
			_, err := in.QueueStats(ctx, backends.QueueStatsParams{Queue: q})
			return err
		}
		c["ListJobs"] = func(ctx context.Context) error {
			_, err := in.ListJobs(ctx, backends.ListJobsParams{Queue: q, State: job.Running, Limit: 10})
			return err
		}
	}
	if kv, ok := h.b.(backends.KVStore); ok {
		c["GetKV"] = func(ctx context.Context) error {
			_, err := kv.GetKV(ctx, backends.GetKVParams{Key: "bt-" + h.ns, Now: h.now()})
			if errors.Is(err, job.ErrNotFound) {
				return nil
			}
			return err
		}
	}
	return c
}

// testAfterClose: once closed, every method fails with job.ErrClosed,
// rather than reaching a closed pool or hanging; a second Close is fine.
func testAfterClose(h *harness) {
	q := h.queue("closed")
	h.enqueue(h.ins(q, "x"))
	r := h.reserveOne(q, longLease)
	calls := h.calls(q, r)
	if err := h.b.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	if err := h.b.Close(); err != nil {
		h.t.Fatalf("second Close: %v", err)
	}
	for name, call := range calls {
		if err := call(context.Background()); !errors.Is(err, job.ErrClosed) {
			h.t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

// testCancelledContext: a call whose context is already cancelled fails
// with that context's error and changes nothing.
func testCancelledContext(h *harness) {
	q := h.queue("ctx")
	h.enqueue(h.ins(q, "x"))
	r := h.reserveOne(q, longLease)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, call := range h.calls(q, r) {
		if err := call(ctx); !errors.Is(err, context.Canceled) {
			h.t.Errorf("%s with a cancelled context = %v, want context.Canceled", name, err)
		}
	}
	// Nothing changed: the job is still held by its lease, and the
	// cancelled Enqueue inserted nothing.
	h.complete(r, nil)
	h.expectEmpty(q)
}
