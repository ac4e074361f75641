package worker_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// Concurrency raised while the worker runs fills the new slots at once;
// a paused worker takes nothing more while its running jobs finish, and
// another consumer gets the rest; Resume fetches again.
func TestReconfigureAndPause(t *testing.T) {
	ctx := context.Background()
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "live.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := queue.NewClient(b, queue.Config{})
	hold := queue.NewTask[int, queue.None]("live.hold", queue.TaskOptions{Queue: "live"})
	started, release := make(chan int, 100), make(chan struct{})
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "live"}}, Concurrency: 1, PollInterval: 10 * time.Millisecond})
	worker.Register(w, hold, func(ctx context.Context, n int) (queue.None, error) {
		started <- n
		<-release
		return queue.None{}, nil
	})
	var reqs []queue.Request
	for i := range 12 {
		reqs = append(reqs, hold.Request(i, nil))
	}
	if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(ctx) }()
	<-started
	if err := w.Reconfigure(worker.LiveConfig{Queues: []worker.QueueConfig{{Name: "live"}}, Concurrency: 4}); err != nil {
		t.Fatal(err)
	}
	for range 3 { // the three new slots fill without any job finishing
		<-started
	}
	if n := w.Running(); n != 4 {
		t.Fatalf("%d running after raising concurrency to 4", n)
	}
	if err := w.Reconfigure(worker.LiveConfig{}); err == nil {
		t.Fatal("Reconfigure with no queue was accepted")
	}

	w.Pause()
	close(release) // the four finish; the paused worker starts nothing else
	deadline := time.Now().Add(30 * time.Second)
	for w.Running() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // no event says "the handler returned"
	}
	rest, err := b.Reserve(ctx, backends.ReserveParams{Queue: "live", Limit: 20, Lease: time.Minute, Worker: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 8 || len(started) != 0 {
		t.Fatalf("another consumer found %d jobs (want 8) and the paused worker started %d more", len(rest), len(started))
	}
	for _, r := range rest {
		if err := b.Retry(ctx, backends.RetryParams{Lease: r.Lease, At: time.Now()}); err != nil { // give them back
			t.Fatal(err)
		}
	}
	w.Resume()
	for range 8 {
		<-started
	}
}
