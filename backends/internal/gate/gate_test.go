package gate_test

import (
	"context"
	"errors"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/gate"
	"github.com/conveyorhq/conveyor/job"
)

func TestEnqueuePreamble(t *testing.T) {
	ctx := context.Background()
	g := gate.New("testbackend")
	ok := backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "1", Queue: "q", Task: "t"}}}
	if res, err := g.Enqueue(ctx, ok); res != nil || err != nil {
		t.Fatalf("a valid batch: %v, %v; want nothing answered", res, err)
	}
	if res, err := g.Enqueue(ctx, backends.EnqueueParams{}); res == nil || len(res) != 0 || err != nil {
		t.Fatalf("an empty batch: %v, %v; want an empty answer", res, err)
	}
	bad := backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "1"}}}
	if _, err := g.Enqueue(ctx, bad); !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("a job without a queue: %v; want job.ErrInvalid", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := g.Enqueue(cancelled, ok); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled context: %v", err)
	}
	g.Close()
	if _, err := g.Enqueue(ctx, backends.EnqueueParams{}); !errors.Is(err, job.ErrClosed) {
		t.Fatalf("after Close, even an empty batch: %v; want job.ErrClosed", err)
	}
}

func TestValidAndPage(t *testing.T) {
	ctx := context.Background()
	g := gate.New("testbackend")
	if err := g.Valid(ctx, backends.ReserveParams{Queue: "q"}); !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("reserve without limit or lease: %v; want job.ErrInvalid", err)
	}
	limit, after, err := g.Page(ctx, backends.ListJobsParams{State: job.Pending, Cursor: "7"})
	if limit != 100 || after != 7 || err != nil {
		t.Fatalf("Page = %d, %d, %v; want 100, 7, nil", limit, after, err)
	}
	g.Close()
	if err := g.Valid(ctx, backends.ReserveParams{Queue: "q", Limit: 1, Lease: 1}); !errors.Is(err, job.ErrClosed) {
		t.Fatalf("after Close: %v; want job.ErrClosed", err)
	}
}
