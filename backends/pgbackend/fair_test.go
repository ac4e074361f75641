package pgbackend_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
)

// ringGroups returns the groups of q's fair ring.
func ringGroups(t *testing.T, pool *pgxpool.Pool, schema, q string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT grp FROM "+pgx.Identifier{schema}.Sanitize()+".fair_groups WHERE queue = $1", q)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return groups
}

func fairJob(q, grp string) *backends.JobInsert {
	return &backends.JobInsert{ID: fmt.Sprint(q, "-", grp, "-", time.Now().UnixNano()), Queue: q, Task: "t", Group: grp, RunAt: time.Now()}
}

// An enqueue into a group the janitor is pruning at that moment never
// leaves its job out of the ring: each of the jobs enqueued while Tidy
// runs back to back is served by ReserveFair.
func TestRingPruneRacesEnqueue(t *testing.T) {
	ctx := context.Background()
	pool, schema := newPool(t)
	b := open(t, pool, pgbackend.Config{Schema: schema, JanitorEvery: -1})
	const q, groups = "fair-race", 2000
	// Every group is in the ring, idle and far behind "top": prunable.
	if _, err := pool.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema}.Sanitize()+`.fair_groups (queue, grp, served)
		SELECT $1, 'g' || i, 1 FROM generate_series(1, $2::int) i UNION ALL SELECT $1, 'top', 1000000`, q, groups); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := b.Tidy(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 1; i <= groups; i++ {
		if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{fairJob(q, fmt.Sprint("g", i))}}); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	served := 0
	for {
		recs, err := b.ReserveFair(ctx, backends.ReserveParams{Queue: q, Limit: 500, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		served += len(recs)
	}
	if served != groups {
		t.Fatalf("ReserveFair served %d of the %d jobs enqueued while the janitor pruned the ring", served, groups)
	}
}
