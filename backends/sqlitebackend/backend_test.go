package sqlitebackend_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/workflow/workflowtest"
)

func open(t *testing.T, path string) *sqlitebackend.Backend {
	t.Helper()
	b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
		b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "jobs.db"), Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, FairGroups: func(t *testing.T, b backends.Backend, q string) []string {
		rows, err := b.(*sqlitebackend.Backend).DB().Query(`SELECT grp FROM conveyor_fair_groups WHERE queue = ?`, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var groups []string
		for rows.Next() {
			var g string
			if err := rows.Scan(&g); err != nil {
				t.Fatal(err)
			}
			groups = append(groups, g)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return groups
	}, TimePrecision: time.Microsecond, FairBacklog: fairBacklog, BeginTx: func(t *testing.T, b backends.Backend) backendtest.Tx {
		tx, err := b.(*sqlitebackend.Backend).DB().BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return backendtest.Tx{Tx: tx, Commit: tx.Commit, Rollback: tx.Rollback}
	}}.Run(t)
}

// Two handles on one file stand for two processes: a web app enqueuing and
// workers reserving from both. Every job runs exactly once.
func TestTwoHandlesShareOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	a, b := open(t, path), open(t, path)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	const n = 300
	for i := 0; i < n; i += 50 {
		var batch []*backends.JobInsert
		for j := i; j < i+50; j++ {
			batch = append(batch, &backends.JobInsert{ID: fmt.Sprint("job-", j), Queue: "q", Task: "t"})
		}
		if _, err := a.Enqueue(ctx, backends.EnqueueParams{Jobs: batch}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for _, h := range []*sqlitebackend.Backend{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				recs, err := h.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 7, Lease: time.Minute})
				if err != nil {
					t.Error(err)
					return
				}
				if len(recs) == 0 {
					return
				}
				for _, r := range recs {
					mu.Lock()
					seen[r.ID]++
					mu.Unlock()
					if err := h.Complete(ctx, backends.CompleteParams{Lease: r.Lease}); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d jobs ran, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("job %s ran %d times", id, c)
		}
	}
	// The other handle learns of writes it did not make.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := b.Listen(lctx, backends.ListenParams{Queues: []string{"q"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "late", Queue: "q", Task: "t"}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if ev.Kind != backends.Changed {
			t.Fatalf("event %+v, want Changed", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event for another handle's write")
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "durable.db")
	ctx := context.Background()
	b := open(t, path)
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "keep", Queue: "q", Task: "t", Payload: []byte("p")}}}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = open(t, path)
	defer b.Close()
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 1, Lease: time.Minute})
	if err != nil || len(recs) != 1 || string(recs[0].Payload) != "p" {
		t.Fatalf("after reopen: %v, %v", recs, err)
	}
}

func TestEnqueueTxCommitsWithTheCaller(t *testing.T) {
	ctx := context.Background()
	b := open(t, filepath.Join(t.TempDir(), "tx.db"))
	defer b.Close()
	db := b.DB()
	if _, err := db.ExecContext(ctx, `CREATE TABLE orders (id INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for _, commit := range []bool{false, true} {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO orders DEFAULT VALUES`); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprint("tx-", commit)
		if _, err := b.EnqueueTx(ctx, tx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: id, Queue: "q", Task: "t"}}}); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.GetJob(ctx, backends.GetJobParams{ID: id})
		if commit != (err == nil) {
			t.Fatalf("commit=%v: GetJob = %v", commit, err)
		}
		if !commit && !errors.Is(err, job.ErrNotFound) {
			t.Fatalf("rolled back job: %v", err)
		}
	}
}

// A row damaged outside Conveyor is dead-lettered with the reason; the
// queue's other jobs keep flowing.
func TestCorruptRowIsDeadLettered(t *testing.T) {
	ctx := context.Background()
	b := open(t, filepath.Join(t.TempDir(), "corrupt.db"))
	defer b.Close()
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{
		{ID: "bad", Queue: "q", Task: "t"}, {ID: "good", Queue: "q", Task: "t"},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DB().ExecContext(ctx, `UPDATE conveyor_jobs SET headers = '{not json' WHERE id = 'bad'`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetJob(ctx, backends.GetJobParams{ID: "bad"}); !errors.Is(err, job.ErrMalformedPayload) {
		t.Fatalf("GetJob(corrupt) = %v", err)
	}
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 10, Lease: time.Minute})
	if err != nil || len(recs) != 1 || recs[0].ID != "good" {
		t.Fatalf("Reserve = %v, %v; want just the good job", recs, err)
	}
	r, err := b.GetJob(ctx, backends.GetJobParams{ID: "bad"})
	if err != nil || r.State != job.Dead || !strings.Contains(r.LastError().Error, "corrupt job record") {
		t.Fatalf("corrupt job: %+v, %v", r, err)
	}
}

func TestPruneKeepsWhatRetentionAndUniquenessNeed(t *testing.T) {
	ctx := context.Background()
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{
		Path: filepath.Join(t.TempDir(), "prune.db"), KeepDone: time.Nanosecond, KeepDead: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{
		{ID: "done", Queue: "q", Task: "t"},
		{ID: "dead", Queue: "q", Task: "t"},
		{ID: "unique", Queue: "q", Task: "t", UniqueKey: "k", UniqueUntil: time.Now().Add(time.Hour)},
		{ID: "waiting", Queue: "q", Task: "t", RunAt: time.Now().Add(time.Hour)},
	}}); err != nil {
		t.Fatal(err)
	}
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 3, Lease: time.Minute})
	if err != nil || len(recs) != 3 {
		t.Fatal(recs, err)
	}
	for _, r := range recs {
		if r.ID == "dead" {
			err = b.DeadLetter(ctx, backends.DeadLetterParams{Lease: r.Lease, Error: job.AttemptError{Error: "x"}})
		} else {
			err = b.Complete(ctx, backends.CompleteParams{Lease: r.Lease})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	n, err := b.Prune(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want only the done job without a unique window", n, err)
	}
	for id, kept := range map[string]bool{"done": false, "dead": true, "unique": true, "waiting": true} {
		_, err := b.GetJob(ctx, backends.GetJobParams{ID: id})
		if kept != (err == nil) {
			t.Errorf("job %s: kept=%v, GetJob error %v", id, kept, err)
		}
	}
}

// TestWorkflows runs the workflow engine's suite on the backend's KV
// store, each case in a file of its own.
func TestWorkflows(t *testing.T) {
	fresh := func(t *testing.T) backends.Backend { return open(t, filepath.Join(t.TempDir(), "wf.db")) }
	workflowtest.Run(t, fresh)
	workflowtest.RunTx(t, fresh, func(t *testing.T, b backends.Backend) (any, func() error, func() error) {
		tx, err := b.(*sqlitebackend.Backend).DB().BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return tx, tx.Commit, tx.Rollback
	})
}
