package worker_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// The backend goes away mid-run — here another process holds SQLite's
// write lock for longer than the busy timeout, so every write fails — and
// comes back. The worker backs off, carries on, and no job is lost.
func TestWorkerRidesOutBackendOutage(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outage.db")
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: path, BusyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	task := queue.NewTask[Args, queue.None]("outage", queue.TaskOptions{})
	w := worker.New(b, worker.Config{Concurrency: 4, LeaseDuration: time.Second, PollInterval: 50 * time.Millisecond})
	worker.Register(w, task, func(ctx context.Context, _ Args) (queue.None, error) {
		time.Sleep(30 * time.Millisecond)
		return queue.None{}, nil
	})
	c := queue.NewClient(b, queue.Config{})
	const n = 30
	var reqs []queue.Request
	for i := range n {
		reqs = append(reqs, task.Request(Args{N: i}, nil))
	}
	if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	counts := func() map[job.State]int {
		st, err := b.QueueStats(ctx, backends.QueueStatsParams{Queue: "default"})
		if err != nil || len(st) != 1 {
			t.Fatalf("QueueStats = %v, %v", st, err)
		}
		return st[0].Counts
	}
	waitFor(t, func() bool { return counts()[job.Done] >= 5 })

	// The outage: an exclusive lock from another connection.
	other, err := sqlitebackend.OpenDB(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	// Enqueues fail with a clear error while the lock is held...
	if _, err := task.Enqueue(ctx, c, Args{}, nil); err == nil {
		t.Fatal("enqueue succeeded while the database was locked")
	}
	time.Sleep(1500 * time.Millisecond) // longer than the lease: heartbeats fail too
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	waitFor(t, func() bool { return counts()[job.Done] == n })
	if c := counts(); c[job.Dead] != 0 || c[job.Running] != 0 || c[job.Pending] != 0 {
		t.Fatalf("after the outage: %v", c)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
