package worker_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// A rolling deploy on one SQLite file: an old worker process (it knows
// resize) and a new one (resize and the new thumbnail task) side by side.
// The new code enqueues thumbnails while the old worker is still taking
// jobs; it meets them first and gives them back. Only the new worker runs
// them, every job finishes once, none dead, no attempt spent.
func TestRollingDeployOldWorkerLeavesNewTasks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "deploy.db")
	open := func() *sqlitebackend.Backend { // one handle per process
		b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	oldB, newB := open(), open()
	resize := queue.NewTask[Args, queue.None]("deploy.resize", queue.TaskOptions{})
	thumbnail := queue.NewTask[Args, queue.None]("deploy.thumbnail", queue.TaskOptions{})

	var mu sync.Mutex
	ranOn := map[string][]string{} // job ID -> the workers that ran it
	handler := func(who string) func(context.Context, Args) (queue.None, error) {
		return func(ctx context.Context, _ Args) (queue.None, error) {
			j, _ := worker.JobFromContext(ctx)
			mu.Lock()
			ranOn[j.ID] = append(ranOn[j.ID], who)
			mu.Unlock()
			return queue.None{}, nil
		}
	}
	start := func(w *worker.Worker) {
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Stop(ctx) })
	}

	var oldLogs logs
	oldSaw := newFeed()
	old := worker.New(oldB, worker.Config{ID: "old", Observer: oldSaw, Logger: oldLogs.logger(),
		PollInterval: 20 * time.Millisecond, UnknownTaskDelay: 50 * time.Millisecond})
	worker.Register(old, resize, handler("old"))
	start(old)

	c := queue.NewClient(newB, queue.Config{}) // the new code enqueues
	var reqs []queue.Request
	for i := range 20 {
		reqs = append(reqs, thumbnail.Request(Args{N: i}, nil), resize.Request(Args{N: i}, nil))
	}
	refs, err := c.EnqueueMany(ctx, reqs...)
	if err != nil {
		t.Fatal(err)
	}
	oldSaw.until(t, "the old worker meets a thumbnail", func(d delivery) bool { return d.out == worker.UnknownTask })

	nw := worker.New(newB, worker.Config{ID: "new", PollInterval: 20 * time.Millisecond})
	worker.Register(nw, resize, handler("new"))
	worker.Register(nw, thumbnail, handler("new"))
	start(nw)

	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, ref := range refs {
		r, err := c.WaitFinished(wctx, ref.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != job.Done || r.Attempts() != 0 {
			t.Fatalf("%s (%s): state %s attempts %d; want done with no attempt used", r.ID, r.Task, r.State, r.Attempts())
		}
		mu.Lock()
		on := ranOn[r.ID]
		mu.Unlock()
		if len(on) != 1 || (r.Task == thumbnail.Name() && on[0] != "new") {
			t.Fatalf("%s (%s) ran on %v; want once, a thumbnail on the new worker only", r.ID, r.Task, on)
		}
	}
	st, err := newB.QueueStats(ctx, backends.QueueStatsParams{Queue: "default"})
	if err != nil || len(st) != 1 || st[0].Counts[job.Dead] != 0 || st[0].Counts[job.Done] != len(refs) {
		t.Fatalf("QueueStats = %+v, %v; want %d done and none dead", st, err, len(refs))
	}
	warned := oldLogs.lines(t, releasedMsg)
	if len(warned) == 0 || warned[0]["task"] != thumbnail.Name() || warned[0]["worker"] != "old" {
		t.Fatalf("old worker's warnings %v; want one naming the thumbnail task and the old worker", warned)
	}
}
