package membackend_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
)

func TestRetentionPrunesFinishedJobs(t *testing.T) {
	ctx := context.Background()
	clock := &backendtest.Clock{}
	b := membackend.New(membackend.Config{Clock: clock, KeepDone: time.Hour}) // KeepDead: the default 7 days
	defer b.Close()
	enqueue := func(ins ...*backends.JobInsert) {
		t.Helper()
		if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: ins}); err != nil {
			t.Fatal(err)
		}
	}
	reserve := func() *job.Record {
		t.Helper()
		rs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 1, Lease: time.Minute})
		if err != nil || len(rs) != 1 {
			t.Fatalf("reserve: %v, %v", rs, err)
		}
		return rs[0]
	}
	// Enqueued one by one: each reserve takes the one job waiting.
	enqueue(&backends.JobInsert{ID: "done", Queue: "q", Task: "t"})
	if err := b.Complete(ctx, backends.CompleteParams{Lease: reserve().Lease}); err != nil {
		t.Fatal(err)
	}
	enqueue(&backends.JobInsert{ID: "dead", Queue: "q", Task: "t"})
	if err := b.DeadLetter(ctx, backends.DeadLetterParams{Lease: reserve().Lease, Error: job.AttemptError{Attempt: 1, Error: "boom"}}); err != nil {
		t.Fatal(err)
	}
	enqueue(&backends.JobInsert{ID: "unique", Queue: "q", Task: "t", UniqueKey: "k", UniqueUntil: clock.Now().Add(3 * time.Hour)})
	if err := b.Complete(ctx, backends.CompleteParams{Lease: reserve().Lease}); err != nil {
		t.Fatal(err)
	}

	clock.Advance(2 * time.Hour)
	enqueue(&backends.JobInsert{ID: "later", Queue: "q", Task: "t"}) // an Enqueue runs the due janitor
	wantJobs(t, b, map[string]bool{"done": false, "dead": true, "unique": true, "later": true})
	res, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "dup", Queue: "q", Task: "t", UniqueKey: "k"}}})
	if err != nil || !res[0].Duplicate || res[0].ID != "unique" {
		t.Fatalf("while its window is open, the finished job must still hold its key and be kept: %+v, %v", res, err)
	}

	clock.Advance(8 * 24 * time.Hour)
	if err := b.Tidy(ctx); err != nil {
		t.Fatal(err)
	}
	wantJobs(t, b, map[string]bool{"dead": false, "unique": false, "later": true})
	stats, err := b.QueueStats(ctx, backends.QueueStatsParams{Queue: "q"})
	if err != nil || len(stats) != 1 || stats[0].Counts[job.Done] != 0 || stats[0].Counts[job.Dead] != 0 || stats[0].Counts[job.Pending] != 1 {
		t.Fatalf("counts after pruning: %+v, %v", stats, err)
	}
}

func TestRetentionNegativeKeepsForever(t *testing.T) {
	ctx := context.Background()
	clock := &backendtest.Clock{}
	b := membackend.New(membackend.Config{Clock: clock, KeepDone: -1})
	defer b.Close()
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "a", Queue: "q", Task: "t"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Cancel(ctx, backends.CancelParams{JobID: "a"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(365 * 24 * time.Hour)
	if err := b.Tidy(ctx); err != nil {
		t.Fatal(err)
	}
	wantJobs(t, b, map[string]bool{"a": true})
}

func wantJobs(t *testing.T, b *membackend.Backend, want map[string]bool) {
	t.Helper()
	for id, kept := range want {
		_, err := b.GetJob(context.Background(), backends.GetJobParams{ID: id})
		switch {
		case kept && err != nil:
			t.Errorf("job %s: %v; want it kept", id, err)
		case !kept && !errors.Is(err, job.ErrNotFound):
			t.Errorf("job %s: %v; want it pruned (job.ErrNotFound)", id, err)
		}
	}
}
