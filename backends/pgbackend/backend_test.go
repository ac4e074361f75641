package pgbackend_test

import (
	"context"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/internal/faulttest"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/scheduler/schedulertest"
	"github.com/conveyorhq/conveyor/workflow/workflowtest"
)

// newPool connects to the test server and gives the test a schema of its
// own, dropped at the end.
func newPool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), testenv.PostgresURL(t)+"?pool_max_conns=20")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, freshSchema(t, pool)
}

// freshSchema names a schema for the test, empty, and drops it at the end.
func freshSchema(t testing.TB, pool *pgxpool.Pool) string {
	ctx := context.Background()
	schema := "t_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	if len(schema) > 60 {
		schema = schema[:60]
	}
	drop := func() { _, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE") }
	drop()
	t.Cleanup(drop)
	return schema
}

func open(t testing.TB, pool *pgxpool.Pool, cfg pgbackend.Config) *pgbackend.Backend {
	t.Helper()
	cfg.Pool = pool
	cfg.Migrate = true
	b, err := pgbackend.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	pool, _ := newPool(t)
	var schemas sync.Map // of each subtest's backend
	// A schema per subtest: each steps its own clock, and a janitor
	// sharing a schema would expire another subtest's leases early. No
	// background janitor: the suite runs Tidy where a case needs it, and a
	// tick holding the janitor's lock at that moment would make that Tidy
	// skip its round (CI once saw the fair ring unpruned so).
	backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
		schema := freshSchema(t, pool)
		b := open(t, pool, pgbackend.Config{Schema: schema, Clock: clock, JanitorEvery: -1})
		schemas.Store(b, schema)
		return b
	}, FairGroups: func(t *testing.T, b backends.Backend, q string) []string {
		schema, _ := schemas.Load(b)
		return ringGroups(t, pool, schema.(string), q)
	}, TimePrecision: time.Microsecond, BeginTx: func(t *testing.T, b backends.Backend) backendtest.Tx {
		ctx := context.Background()
		tx, err := b.(*pgbackend.Backend).Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return backendtest.Tx{Tx: tx, Commit: func() error { return tx.Commit(ctx) }, Rollback: func() error { return tx.Rollback(ctx) }}
	}}.Run(t)
}

// TestScheduler runs the scheduler's suite on the backend's KV store, each
// case in a schema of its own.
func TestScheduler(t *testing.T) {
	schedulertest.Run(t, func(t *testing.T) backends.Backend {
		pool, schema := newPool(t)
		return open(t, pool, pgbackend.Config{Schema: schema})
	})
}

// Finished jobs are pruned after their retention, except while their
// unique window is open; the maintained counts follow.
func TestTidyPrunesFinishedJobs(t *testing.T) {
	pool, schema := newPool(t)
	b := open(t, pool, pgbackend.Config{Schema: schema, KeepDone: time.Millisecond, JanitorEvery: -1})
	faulttest.PruneAfterRetention(t, b, b.Tidy)
}

// The maintained counts equal a count of the rows while workers reserve,
// complete, retry and dead-letter concurrently, both with deltas still in
// the log and after the janitor has folded them; and a migration from
// version 2 (sharded counters) to the log keeps them.
func TestCountsMatchTheRows(t *testing.T) {
	ctx := context.Background()
	pool, schema := newPool(t)
	if _, err := pgbackend.Migrate(ctx, pool, pgbackend.MigrateParams{Schema: schema, To: 2}); err != nil {
		t.Fatal(err)
	}
	b := open(t, pool, pgbackend.Config{Schema: schema, JanitorEvery: -1})
	check := func(when string) {
		t.Helper()
		want := map[job.State]int{}
		rows, err := pool.Query(ctx, "SELECT state, count(*) FROM "+pgx.Identifier{schema}.Sanitize()+".jobs WHERE queue = 'q' GROUP BY state")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var st string
			var n int
			if err := rows.Scan(&st, &n); err != nil {
				t.Fatal(err)
			}
			want[job.State(st)] = n
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		st, err := b.QueueStats(ctx, backends.QueueStatsParams{Queue: "q"})
		if err != nil || len(st) != 1 {
			t.Fatalf("%s: QueueStats = %v, %v", when, st, err)
		}
		got := maps.Clone(st[0].Counts)
		maps.DeleteFunc(got, func(_ job.State, n int) bool { return n == 0 })
		if !maps.Equal(got, want) {
			t.Fatalf("%s: counts %v; the rows say %v", when, st[0].Counts, want)
		}
	}
	enqueue := func(n int) {
		t.Helper()
		p := backends.EnqueueParams{}
		for range n {
			p.Jobs = append(p.Jobs, &backends.JobInsert{ID: uuid.NewString(), Queue: "q", Task: "t", Payload: []byte("{}")})
		}
		if _, err := b.Enqueue(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(50)
	check("before migrating")
	if _, err := pgbackend.Migrate(ctx, pool, pgbackend.MigrateParams{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	check("after migrating")

	enqueue(400)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 7, Lease: time.Minute, Worker: "w"})
				if err != nil {
					t.Error(err)
					return
				}
				if len(recs) == 0 {
					return
				}
				for j, r := range recs {
					switch {
					case (i+j)%5 == 0:
						err = b.DeadLetter(ctx, backends.DeadLetterParams{Lease: r.Lease, Error: job.AttemptError{Attempt: 1, At: time.Now(), Error: "x"}})
					case (i+j)%5 == 1 && r.Attempts() == 0:
						err = b.Retry(ctx, backends.RetryParams{Lease: r.Lease, At: time.Now(), Error: &job.AttemptError{Attempt: 1, At: time.Now(), Error: "y"}})
					default:
						err = b.Complete(ctx, backends.CompleteParams{Lease: r.Lease})
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // the janitor, folding while the workers write
		defer wg.Done()
		for range 20 {
			if err := b.Tidy(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	check("with deltas in the log")
	if err := b.Tidy(ctx); err != nil {
		t.Fatal(err)
	}
	check("after a fold")
}

// TestWorkflows runs the workflow engine's suite on the backend's KV
// store, each case in a schema of its own.
func TestWorkflows(t *testing.T) {
	fresh := func(t *testing.T) backends.Backend {
		pool, schema := newPool(t)
		return open(t, pool, pgbackend.Config{Schema: schema})
	}
	workflowtest.Run(t, fresh)
	workflowtest.RunTx(t, fresh, func(t *testing.T, b backends.Backend) (any, func() error, func() error) {
		ctx := context.Background()
		tx, err := b.(*pgbackend.Backend).Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tx, func() error { return tx.Commit(ctx) }, func() error { return tx.Rollback(ctx) }
	})
}
