package sqlitebackend_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/job"
)

// openOld opens a file whose jobs table was created without the CHECK
// constraints, as files created before them were; the janitor is left to
// the test (JanitorEvery an hour).
func openOld(t *testing.T) *sqlitebackend.Backend {
	t.Helper()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sqlitebackend.OpenDB(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	schema := sqlitebackend.SchemaBeforeChecks()
	if strings.Contains(schema, "CHECK (") {
		t.Fatalf("schema still has checks:\n%s", schema)
	}
	if _, err := db.Exec(schema); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: path, JanitorEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func enqueueIDs(t *testing.T, b backends.Backend, ids ...string) {
	t.Helper()
	var p backends.EnqueueParams
	for _, id := range ids {
		p.Jobs = append(p.Jobs, &backends.JobInsert{ID: id, Queue: "q", Task: "t"})
	}
	if _, err := b.Enqueue(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func stats(t *testing.T, b *sqlitebackend.Backend) map[job.State]int {
	t.Helper()
	st, err := b.QueueStats(context.Background(), backends.QueueStatsParams{Queue: "q"})
	if err != nil || len(st) != 1 {
		t.Fatalf("QueueStats = %v, %v", st, err)
	}
	return st[0].Counts
}

// A file created with the checks refuses an unknown state and a time that
// is not an integer.
func TestChecksRefuseCorruptColumns(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "checked.db"))
	defer b.Close()
	enqueueIDs(t, b, "j")
	for _, set := range []string{`state = 'bogus'`, `run_at = 'abc'`, `deliveries = 1.5`} {
		_, err := b.DB().Exec(`UPDATE conveyor_jobs SET ` + set + ` WHERE id = 'j'`)
		if err == nil || !strings.Contains(err.Error(), "CHECK constraint failed") {
			t.Errorf("SET %s = %v, want a CHECK failure", set, err)
		}
	}
}

// In a file without the checks, a job with an unknown state, or a time
// that is not an integer where it decides when the job is due, its lease
// expires or it is pruned, is dead-lettered by the janitor with the reason
// naming the column and its value. Until then GetJob shows it with
// an error naming the same; afterwards it counts as dead, reads cleanly and
// lists with the dead letters, and the queue's other jobs still run.
func TestJanitorDeadLettersRowsThatDoNotDecode(t *testing.T) {
	ctx := context.Background()
	b := openOld(t)
	corrupt := []struct{ id, set, reason string }{
		{"bad-state", `state = 'bogus'`, `state "bogus" is not a job state`},
		{"bad-run-at", `run_at = 'abc'`, `run_at "abc" is not a time`},
		{"bad-both", `state = 'gone', run_at = x'00'`, `state "gone" is not a job state; run_at "\x00" is not a time`},
		// A lease that never expires and a finished job never pruned.
		{"bad-lease", `state = 'running', lease_token = 't', lease_expires_at = 'x'`, `lease_expires_at "x" is not a time`},
		{"bad-finished", `state = 'done', finished_at = 'abc'`, `finished_at "abc" is not a time`},
	}
	enqueueIDs(t, b, "good-1", "bad-state", "bad-run-at", "bad-both", "bad-lease", "bad-finished", "good-2")
	for _, c := range corrupt {
		if _, err := b.DB().Exec(`UPDATE conveyor_jobs SET `+c.set+` WHERE id = ?`, c.id); err != nil {
			t.Fatal(err)
		}
	}

	r, err := b.GetJob(ctx, backends.GetJobParams{ID: "bad-run-at"})
	if r == nil || !errors.Is(err, job.ErrMalformedPayload) || !strings.Contains(err.Error(), `run_at "abc" is not a time`) {
		t.Fatalf("GetJob(bad run_at) before the janitor = %+v, %v; want the record and an error naming run_at", r, err)
	}
	if n := stats(t, b); n["bogus"] != 1 || n["gone"] != 1 {
		t.Fatalf("counts before the janitor: %v, want the unknown states counted", n)
	}

	if err := b.Tidy(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range corrupt {
		r, err := b.GetJob(ctx, backends.GetJobParams{ID: c.id})
		if err != nil {
			t.Fatalf("GetJob(%s) after the janitor: %v", c.id, err)
		}
		last := r.LastError()
		if r.State != job.Dead || r.FinishedAt.IsZero() || last == nil || last.Attempt != 1 ||
			last.Error != "corrupt job record: "+c.reason {
			t.Errorf("%s after the janitor: %s, finished %v, last error %+v; want dead with %q", c.id, r.State, r.FinishedAt, last, c.reason)
		}
	}
	n := stats(t, b)
	for st := range n {
		if !st.Valid() {
			t.Errorf("counts %v hold state %q", n, st)
		}
	}
	if n[job.Dead] != len(corrupt) || n[job.Pending] != 2 {
		t.Fatalf("counts after the janitor: %v, want %d dead and 2 pending", n, len(corrupt))
	}
	page, err := b.ListJobs(ctx, backends.ListJobsParams{Queue: "q", State: job.Dead})
	if err != nil || len(page.Jobs) != len(corrupt) {
		t.Fatalf("dead jobs: %v, %v", page, err)
	}

	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 10, Lease: time.Minute})
	if err != nil || len(recs) != 2 {
		t.Fatalf("Reserve after the janitor = %v, %v; want the two good jobs", recs, err)
	}
	for _, r := range recs {
		if !strings.HasPrefix(r.ID, "good-") {
			t.Fatalf("reserved %s", r.ID)
		}
		if err := b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}); err != nil {
			t.Fatal(err)
		}
	}
	// A second pass finds nothing left to set aside.
	if err := b.Tidy(ctx); err != nil {
		t.Fatal(err)
	}
	if n := stats(t, b); n[job.Dead] != len(corrupt) || n[job.Done] != 2 {
		t.Fatalf("counts after a second pass: %v", n)
	}
}

// A due job with a column that is not an integer is set aside by Reserve
// itself, with the reason, instead of failing every reserve of its queue:
// the delivery counts Reserve reads first, and any other column of the
// rows it leases.
func TestReserveSetsAsideUnreadableCandidates(t *testing.T) {
	ctx := context.Background()
	b := openOld(t)
	corrupt := map[string]string{
		"bad-max": `max_deliveries = 'many'`, "bad-deliveries": `deliveries = 1.5`, "bad-created": `created_at = 'then'`,
	}
	enqueueIDs(t, b, "bad-max", "bad-deliveries", "good", "bad-created")
	for id, set := range corrupt {
		if _, err := b.DB().Exec(`UPDATE conveyor_jobs SET `+set+` WHERE id = ?`, id); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 10, Lease: time.Minute})
	if err != nil || len(recs) != 1 || recs[0].ID != "good" {
		t.Fatalf("Reserve = %v, %v; want just the good job", recs, err)
	}
	for id, want := range map[string]string{
		"bad-max":        `corrupt job record: max_deliveries "many" is not an integer`,
		"bad-deliveries": `corrupt job record: deliveries "1.5" is not an integer`,
		"bad-created":    `corrupt job record: created_at "then" is not a time`,
	} {
		r, err := b.GetJob(ctx, backends.GetJobParams{ID: id})
		if err != nil || r.State != job.Dead || r.LastError().Error != want {
			t.Errorf("%s: %+v, %v; want dead with %q", id, r, err, want)
		}
	}
}

// A job delivered MaxDeliveries times is dead-lettered at the next reserve
// with the reason as attempt Attempts()+1, as in the other backends.
func TestPoisonDeadLetterIsTheNextAttempt(t *testing.T) {
	ctx := context.Background()
	b := open(t, filepath.Join(t.TempDir(), "poison.db"))
	defer b.Close()
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "p", Queue: "q", Task: "t", MaxDeliveries: 1}}}); err != nil {
		t.Fatal(err)
	}
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 1, Lease: time.Minute})
	if err != nil || len(recs) != 1 {
		t.Fatal(recs, err)
	}
	if err := b.Retry(ctx, backends.RetryParams{Lease: recs[0].Lease, At: time.Now(),
		Error: &job.AttemptError{Attempt: 1, At: time.Now(), Error: "boom"}}); err != nil {
		t.Fatal(err)
	}
	if recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: 1, Lease: time.Minute}); err != nil || len(recs) != 0 {
		t.Fatalf("Reserve of a poison job = %v, %v", recs, err)
	}
	r, err := b.GetJob(ctx, backends.GetJobParams{ID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if last := r.LastError(); r.State != job.Dead || r.Attempts() != 2 || last.Attempt != 2 || last.Error != backends.PoisonReason(1) {
		t.Fatalf("poison job: %s, errors %+v; want dead with attempt 2: %q", r.State, r.Errors, backends.PoisonReason(1))
	}
}

// logLines hands each log line to the test, dropping lines while the test
// is not reading.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default:
	}
	return len(p), nil
}

// A janitor pass that fails is logged to Config.Logger, not dropped.
func TestJanitorFailuresAreLogged(t *testing.T) {
	lines := make(logLines, 16)
	b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{
		Path: filepath.Join(t.TempDir(), "logged.db"), JanitorEvery: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(lines, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.DB().Exec(`DROP TABLE conveyor_jobs`); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line := <-lines:
			if strings.Contains(line, "sqlitebackend: janitor") && strings.Contains(line, "no such table") {
				return
			}
		case <-timeout:
			t.Fatal("no janitor failure logged")
		}
	}
}
