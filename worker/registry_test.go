package worker_test

import (
	"context"
	"os"
	"testing"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// A started worker is listed with where it runs and what it serves; a
// stopped one is not.
func TestWorkersAreListedWhileRunning(t *testing.T) {
	ctx := context.Background()
	b := membackend.New()
	w := worker.New(b, worker.Config{ID: "w-1", Queues: []worker.QueueConfig{{Name: "a"}, {Name: "b"}}, Concurrency: 7})
	worker.Register(w, queue.NewTask[Args, queue.None]("registry.noop", queue.TaskOptions{}),
		func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := worker.Workers(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("Workers = %+v, want one", list)
	}
	got := list[0]
	if got.ID != "w-1" || got.PID != os.Getpid() || got.Concurrency != 7 || len(got.Queues) != 2 || got.Heartbeat.IsZero() || got.Host == "" {
		t.Fatalf("worker info %+v", got)
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if list, err := worker.Workers(ctx, b); err != nil || len(list) != 0 {
		t.Fatalf("after Stop: %+v, %v", list, err)
	}
}
