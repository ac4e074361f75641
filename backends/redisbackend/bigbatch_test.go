package redisbackend_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
)

// A batch of 10,000 jobs for one queue is stored whole, on the lean script
// (no bound, no unique key) and on the full one (a bound): a sorted-set
// write of that many members once failed past Lua's unpack limit after the
// jobs' hashes were written, leaving jobs that existed but were never due.
func TestBigBatchIsStoredWhole(t *testing.T) {
	ctx := context.Background()
	b := open(t, newClient(t), redisbackend.Config{})
	const n = 10_000
	for _, tc := range []struct {
		name  string
		bound int
	}{{"lean", 0}, {"full", n + 1}} {
		t.Run(tc.name, func(t *testing.T) {
			q := "big-" + tc.name
			jobs := make([]*backends.JobInsert, n)
			for i := range jobs {
				jobs[i] = &backends.JobInsert{ID: fmt.Sprintf("%s-%d", q, i), Queue: q, Task: "t", Payload: []byte("{}"), MaxDepth: tc.bound}
				if i%2 == 1 {
					jobs[i].RunAt = time.Now().Add(time.Hour) // the scheduled sets too
				}
			}
			res, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: jobs})
			if err != nil || len(res) != n {
				t.Fatalf("Enqueue = %d results, %v", len(res), err)
			}
			st, err := b.QueueStats(ctx, backends.QueueStatsParams{Queue: q})
			if err != nil || len(st) != 1 || st[0].Counts["pending"] != n/2 || st[0].Counts["scheduled"] != n/2 {
				t.Fatalf("QueueStats = %+v, %v; want %d pending and %d scheduled", st, err, n/2, n/2)
			}
			reserved := 0
			for {
				got, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: n, Lease: time.Minute, Worker: "w"})
				if err != nil {
					t.Fatal(err)
				}
				if len(got) == 0 {
					break
				}
				reserved += len(got)
			}
			if reserved != n/2 {
				t.Fatalf("reserved %d jobs, want the %d due", reserved, n/2)
			}
		})
	}
}
