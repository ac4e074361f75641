package sqlitebackend_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// A batch long enough for the multi-row INSERT answers each job in its
// place: the new ones inserted in their state, the IDs that existed as
// duplicates with their current state, and a remainder past the last full
// statement inserted too.
func TestLongBatchAnswersEachJob(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "jobs.db"))
	defer b.Close()
	ctx := t.Context()
	later := time.Now().Add(time.Hour)
	ins := func(id string, runAt time.Time) *backends.JobInsert {
		return &backends.JobInsert{ID: id, Queue: "q", Task: "t", Payload: []byte(`{}`), RunAt: runAt}
	}
	// Two jobs exist before the batch: one scheduled, one running.
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{ins("old-0", later), ins("old-1", time.Time{})}}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 1, Lease: time.Minute, Worker: "w"}); err != nil || len(got) != 1 {
		t.Fatalf("reserve: %v, %v", got, err)
	}
	var batch []*backends.JobInsert
	want := map[string]backends.EnqueueResult{}
	for i := range 150 {
		id, runAt, st := fmt.Sprintf("new-%03d", i), time.Time{}, job.Pending
		if i%3 == 0 {
			runAt, st = later, job.Scheduled
		}
		switch i {
		case 10:
			id, st = "old-0", job.Scheduled
		case 100:
			id, st = "old-1", job.Running
		}
		batch = append(batch, ins(id, runAt))
		want[id] = backends.EnqueueResult{ID: id, State: st, Duplicate: id == "old-0" || id == "old-1"}
	}
	res, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: batch})
	if err != nil || len(res) != len(batch) {
		t.Fatalf("enqueue: %d results, %v", len(res), err)
	}
	for i, r := range res {
		if w := want[batch[i].ID]; r != w {
			t.Fatalf("job %d: %+v, want %+v", i, r, w)
		}
	}
	stats, err := b.QueueStats(ctx, backends.QueueStatsParams{Queue: "q"})
	if err != nil || len(stats) != 1 {
		t.Fatalf("stats: %+v, %v", stats, err)
	}
	if n := stats[0].Depth(); n != 150 {
		t.Fatalf("%d jobs stored, want 150 (148 new, 2 old): %+v", n, stats[0])
	}
}
