package faulttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// PruneAfterRetention checks a backend opened with KeepDone of 1ms: after
// tidy runs, a finished job is gone, one whose unique window is still open
// is kept, and the counts follow.
func PruneAfterRetention(t *testing.T, b backends.Backend, tidy func(context.Context) error) {
	ctx := context.Background()
	in := b.(backends.Inspector)
	plain := &backends.JobInsert{ID: "plain", Queue: "q", Task: "t"}
	windowed := &backends.JobInsert{ID: "windowed", Queue: "q", Task: "t", UniqueKey: "k", UniqueUntil: time.Now().Add(time.Hour)}
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{plain, windowed}}); err != nil {
		t.Fatal(err)
	}
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 2, Lease: time.Minute})
	if err != nil || len(recs) != 2 {
		t.Fatalf("Reserve = %d, %v", len(recs), err)
	}
	for _, r := range recs {
		if err := b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Millisecond) // past the 1ms retention; nothing announces it
	if err := tidy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := in.GetJob(ctx, backends.GetJobParams{ID: "plain"}); !errors.Is(err, job.ErrNotFound) {
		t.Fatalf("pruned job: %v", err)
	}
	if _, err := in.GetJob(ctx, backends.GetJobParams{ID: "windowed"}); err != nil {
		t.Fatalf("job inside its unique window was pruned: %v", err)
	}
	st, err := in.QueueStats(ctx, backends.QueueStatsParams{Queue: "q"})
	if err != nil || len(st) != 1 || st[0].Counts[job.Done] != 1 {
		t.Fatalf("stats after pruning: %+v, %v", st, err)
	}
}
