package pgbackend_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/internal/faulttest"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

type numArgs struct{ N int }

var numTask = queue.NewTask[numArgs, queue.None]("pg.num", queue.TaskOptions{Queue: "q"})

func counts(t *testing.T, b *pgbackend.Backend, q string) map[job.State]int {
	t.Helper()
	st, err := b.QueueStats(context.Background(), backends.QueueStatsParams{Queue: q})
	if err != nil || len(st) != 1 {
		t.Fatalf("QueueStats = %v, %v", st, err)
	}
	return st[0].Counts
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A job enqueued in the caller's transaction exists if and only if that
// transaction commits, through pgx and through database/sql alike.
func TestEnqueueTxCommitsWithTheCaller(t *testing.T) {
	ctx := context.Background()
	pool, schema := newPool(t)
	b := open(t, pool, pgbackend.Config{Schema: schema})
	c := queue.NewClient(b, queue.Config{})
	exists := func(id string) bool {
		_, err := b.GetJob(ctx, backends.GetJobParams{ID: id})
		return err == nil
	}
	enqueueIn := func(tx any) string {
		refs, err := c.EnqueueTx(ctx, tx, numTask.Request(numArgs{N: 1}, nil))
		must(t, err)
		return refs[0].ID
	}

	tx, err := pool.Begin(ctx)
	must(t, err)
	committed := enqueueIn(tx)
	must(t, tx.Commit(ctx))
	tx, err = pool.Begin(ctx)
	must(t, err)
	rolledBack := enqueueIn(tx)
	must(t, tx.Rollback(ctx))
	if !exists(committed) || exists(rolledBack) {
		t.Fatalf("pgx.Tx: committed exists %v, rolled back exists %v", exists(committed), exists(rolledBack))
	}

	db, err := sql.Open("pgx", testenv.PostgresURL(t))
	must(t, err)
	defer db.Close()
	stx, err := db.BeginTx(ctx, nil)
	must(t, err)
	committed = enqueueIn(stx)
	must(t, stx.Commit())
	stx, err = db.BeginTx(ctx, nil)
	must(t, err)
	rolledBack = enqueueIn(stx)
	must(t, stx.Rollback())
	if !exists(committed) || exists(rolledBack) {
		t.Fatalf("*sql.Tx: committed exists %v, rolled back exists %v", exists(committed), exists(rolledBack))
	}
	if _, err := c.EnqueueTx(ctx, "not a tx", numTask.Request(numArgs{}, nil)); !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("EnqueueTx(string) = %v, want ErrInvalid", err)
	}
	if n := counts(t, b, "q")[job.Pending]; n != 2 {
		t.Fatalf("%d pending jobs counted, want the 2 committed", n)
	}
}

// A handler completes its job in its own transaction: the job is done with
// the handler's write, and the worker's completion afterwards is a no-op.
func TestCompleteTxInTheHandlersTransaction(t *testing.T) {
	ctx := context.Background()
	pool, schema := newPool(t)
	b := open(t, pool, pgbackend.Config{Schema: schema})
	_, err := pool.Exec(ctx, "CREATE TABLE "+pgx.Identifier{schema}.Sanitize()+".ledger (n int)")
	must(t, err)
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "q"}}})
	worker.Register(w, numTask, func(ctx context.Context, a numArgs) (queue.None, error) {
		return queue.None{}, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema}.Sanitize()+".ledger VALUES ($1)", a.N); err != nil {
				return err
			}
			rec, _ := worker.JobFromContext(ctx)
			return b.CompleteTx(ctx, tx, rec.Lease, []byte(`"in tx"`))
		})
	})
	c := queue.NewClient(b, queue.Config{})
	h, err := numTask.Enqueue(ctx, c, numArgs{N: 7}, nil)
	must(t, err)
	_, err = w.WorkDue(ctx)
	must(t, err)
	r, err := b.GetJob(ctx, backends.GetJobParams{ID: h.ID})
	must(t, err)
	var n int
	must(t, pool.QueryRow(ctx, "SELECT n FROM "+pgx.Identifier{schema}.Sanitize()+".ledger").Scan(&n))
	if r.State != job.Done || string(r.Result) != `"in tx"` || n != 7 {
		t.Fatalf("job %s result %s, ledger %d", r.State, r.Result, n)
	}
}

// A job row with a corrupt payload is dead-lettered by the worker with the
// decode error; one with corrupt headers by the backend; the worker carries
// on with the rest.
func TestCorruptRowsAreDeadLettered(t *testing.T) {
	ctx := context.Background()
	pool, schema := newPool(t)
	b := open(t, pool, pgbackend.Config{Schema: schema})
	c := queue.NewClient(b, queue.Config{})
	var reqs []queue.Request
	for i := range 10 {
		reqs = append(reqs, numTask.Request(numArgs{N: i}, nil))
	}
	refs, err := c.EnqueueMany(ctx, reqs...)
	must(t, err)
	jobs := pgx.Identifier{schema}.Sanitize() + ".jobs"
	_, err = pool.Exec(ctx, "UPDATE "+jobs+" SET payload = 'garbage' WHERE id = $1", refs[2].ID)
	must(t, err)
	_, err = pool.Exec(ctx, "UPDATE "+jobs+` SET headers = '[1, 2]' WHERE id = $1`, refs[5].ID)
	must(t, err)
	var ran atomic.Int64
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "q"}}})
	worker.Register(w, numTask, func(ctx context.Context, a numArgs) (queue.None, error) {
		ran.Add(1)
		return queue.None{}, nil
	})
	_, err = w.WorkDue(ctx)
	must(t, err)
	for i, want := range map[int]string{2: "malformed payload", 5: "corrupt job record"} {
		// The row with corrupt headers still reads as corrupt, with the
		// rest of the record.
		r, err := b.GetJob(ctx, backends.GetJobParams{ID: refs[i].ID})
		if r == nil || (err != nil && !errors.Is(err, job.ErrMalformedPayload)) {
			t.Fatalf("GetJob(corrupt job %d) = %v", i, err)
		}
		if r.State != job.Dead || r.LastError() == nil || !strings.Contains(r.LastError().Error, want) {
			t.Fatalf("corrupt job %d: %+v; want dead with %q", i, r, want)
		}
	}
	if n := counts(t, b, "q"); ran.Load() != 8 || n[job.Done] != 8 || n[job.Dead] != 2 {
		t.Fatalf("ran %d, counts %v; want 8 done and 2 dead", ran.Load(), n)
	}
}

// Migrations go down to nothing and up again.
func TestMigrateDownAndUp(t *testing.T) {
	ctx := context.Background()
	pool, schema := newPool(t)
	for _, step := range []struct{ to, want int }{{0, pgbackend.LatestVersion()}, {-1, 0}, {0, pgbackend.LatestVersion()}} {
		v, err := pgbackend.Migrate(ctx, pool, pgbackend.MigrateParams{Schema: schema, To: step.to})
		if err != nil || v != step.want {
			t.Fatalf("Migrate(to %d) = %d, %v; want %d", step.to, v, err, step.want)
		}
	}
	if _, err := pgbackend.Migrate(ctx, pool, pgbackend.MigrateParams{Schema: schema, To: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := pgbackend.New(ctx, pgbackend.Config{Pool: pool, Schema: schema}); err == nil || !strings.Contains(err.Error(), "conveyor migrate") {
		t.Fatalf("New on an unmigrated schema = %v, want an error naming the fix", err)
	}
}

// With LISTEN off (as behind PgBouncer in transaction mode) workers poll and
// still run every job.
func TestNoListenPolls(t *testing.T) {
	ctx := context.Background()
	pool, schema := newPool(t)
	b := open(t, pool, pgbackend.Config{Schema: schema, NoListen: true, PollEvery: 50 * time.Millisecond})
	var ran atomic.Int64
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "q"}}, PollInterval: time.Hour})
	worker.Register(w, numTask, func(ctx context.Context, a numArgs) (queue.None, error) {
		ran.Add(1)
		return queue.None{}, nil
	})
	must(t, w.Start(ctx))
	defer w.Stop(ctx)
	c := queue.NewClient(b, queue.Config{})
	for i := range 5 {
		_, err := numTask.Enqueue(ctx, c, numArgs{N: i}, nil)
		must(t, err)
		testenv.WaitFor(t, 10*time.Second, "the job to run without LISTEN", func() bool { return ran.Load() == int64(i+1) })
	}
}

// PostgreSQL is stopped and started again while a worker runs and an
// enqueuer keeps enqueuing: the worker reconnects and carries on, and every
// job whose enqueue succeeded runs.
func TestWorkerRidesOutPostgresRestart(t *testing.T) {
	srv := testenv.StartPostgres(t)
	pool, err := pgxpool.New(context.Background(), srv.URL+"?pool_max_conns=10")
	must(t, err)
	defer pool.Close()
	b := open(t, pool, pgbackend.Config{})
	faulttest.RideOutRestart(t, b, srv, faulttest.RestartParams{Server: "PostgreSQL", Queue: "q", Poll: 100 * time.Millisecond,
		Jobs: 100, After: 60 * time.Second})
}

// A job's end is durable once Complete, CompleteMany or DeadLetter
// returns: a workflow enqueues the dependents of a step on it and a waiter
// hands its result on, so a server crash just after must not bring the
// job back (a chord's callback once ran while its member was running
// again, in the chord chaos). Each end is the last write before its own
// crash, since a durable commit also makes every earlier one durable. The
// WAL writer is slowed to 10 s so that a commit that did not wait for its
// WAL flush is still only in memory at the crash.
func TestJobEndSurvivesCrash(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartPostgres(t, "wal_writer_delay=10s")
	ends := map[string]struct {
		end  func(b *pgbackend.Backend, l job.Lease) error
		want job.State
	}{
		"Complete": {func(b *pgbackend.Backend, l job.Lease) error {
			return b.Complete(ctx, backends.CompleteParams{Lease: l, Result: []byte(`1`)})
		}, job.Done},
		"CompleteMany": {func(b *pgbackend.Backend, l job.Lease) error {
			errs, err := b.CompleteMany(ctx, backends.CompleteManyParams{Jobs: []backends.CompleteParams{{Lease: l}}})
			return errors.Join(append(errs, err)...)
		}, job.Done},
		"DeadLetter": {func(b *pgbackend.Backend, l job.Lease) error {
			return b.DeadLetter(ctx, backends.DeadLetterParams{Lease: l, Error: job.AttemptError{Attempt: 1, At: time.Now(), Error: "no"}})
		}, job.Dead},
	}
	for name, e := range ends {
		t.Run(name, func(t *testing.T) {
			pool, err := pgxpool.New(ctx, srv.URL)
			must(t, err)
			defer pool.Close()
			// A schema per case: a job the crash undid stays out of the next case's reserve.
			cfg := pgbackend.Config{Schema: strings.ToLower(name), JanitorEvery: -1, NoListen: true}
			b := open(t, pool, cfg)
			ref, err := numTask.Enqueue(ctx, queue.NewClient(b, queue.Config{}), numArgs{N: 1}, nil)
			must(t, err)
			recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 1, Lease: time.Minute})
			must(t, err)
			if len(recs) != 1 || recs[0].ID != ref.ID {
				t.Fatalf("reserved %v, want job %s", recs, ref.ID)
			}
			must(t, e.end(b, recs[0].Lease))
			srv.Crash()
			srv.Start()
			after, err := pgxpool.New(ctx, srv.URL)
			must(t, err)
			defer after.Close()
			r, err := open(t, after, cfg).GetJob(ctx, backends.GetJobParams{ID: ref.ID})
			must(t, err)
			if r.State != e.want {
				t.Fatalf("job is %s after the crash, want %s as acknowledged", r.State, e.want)
			}
		})
	}
}

// Migration 4 refuses a state Conveyor does not know, and a row written
// with one before it (here: by going down to version 3) becomes a dead
// letter with the reason when it runs: counted as dead, readable, and the
// queue's other jobs still run.
func TestUnknownStateIsRefusedOrDeadLettered(t *testing.T) {
	ctx := context.Background()
	pool, schema := newPool(t)
	b := open(t, pool, pgbackend.Config{Schema: schema, JanitorEvery: -1})
	c := queue.NewClient(b, queue.Config{})
	bad, err := numTask.Enqueue(ctx, c, numArgs{N: 1}, nil)
	must(t, err)
	good, err := numTask.Enqueue(ctx, c, numArgs{N: 2}, nil)
	must(t, err)
	corrupt := "UPDATE " + pgx.Identifier{schema}.Sanitize() + ".jobs SET state = 'bogus' WHERE id = $1"
	var pgErr *pgconn.PgError
	if _, err := pool.Exec(ctx, corrupt, bad.ID); !errors.As(err, &pgErr) || pgErr.Code != "23514" {
		t.Fatalf("setting state 'bogus' = %v, want a check violation", err)
	}

	v, err := pgbackend.Migrate(ctx, pool, pgbackend.MigrateParams{Schema: schema, To: 3})
	if err != nil || v != 3 {
		t.Fatalf("Migrate(to 3) = %d, %v", v, err)
	}
	_, err = pool.Exec(ctx, corrupt, bad.ID)
	must(t, err)
	if n := counts(t, b, "q")["bogus"]; n != 1 {
		t.Fatalf("counts before migrating up: %v, want the bogus row counted", counts(t, b, "q"))
	}
	_, err = pgbackend.Migrate(ctx, pool, pgbackend.MigrateParams{Schema: schema})
	must(t, err)

	r, err := b.GetJob(ctx, backends.GetJobParams{ID: bad.ID})
	must(t, err)
	last := r.LastError()
	if r.State != job.Dead || last == nil || last.Error != `corrupt job record: state "bogus" is not a job state` ||
		last.Attempt != 1 || r.FinishedAt.IsZero() {
		t.Fatalf("job with state 'bogus' after migrating: %+v, last error %+v", r, last)
	}
	must(t, b.Tidy(ctx)) // fold the logged deltas too
	for st := range counts(t, b, "q") {
		if !st.Valid() {
			t.Fatalf("counts %v hold state %q", counts(t, b, "q"), st)
		}
	}
	var ran atomic.Int64
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "q"}}})
	worker.Register(w, numTask, func(ctx context.Context, a numArgs) (queue.None, error) {
		ran.Add(1)
		return queue.None{}, nil
	})
	_, err = w.WorkDue(ctx)
	must(t, err)
	r, err = b.GetJob(ctx, backends.GetJobParams{ID: good.ID})
	must(t, err)
	if n := counts(t, b, "q"); ran.Load() != 1 || r.State != job.Done || n[job.Done] != 1 || n[job.Dead] != 1 {
		t.Fatalf("ran %d, good job %s, counts %v; want the good job done and the bogus one dead", ran.Load(), r.State, n)
	}
	page, err := b.ListJobs(ctx, backends.ListJobsParams{Queue: "q", State: job.Dead})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].ID != bad.ID {
		t.Fatalf("dead jobs: %v, %v", page, err)
	}
}
