package worker_test

import (
	"context"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// A started worker is listed with where it runs and what it serves; a
// stopped one is not.
func TestWorkersAreListedWhileRunning(t *testing.T) {
	ctx := context.Background()
	b := membackend.New(membackend.Config{})
	w := worker.New(b, worker.Config{ID: "w-1", Queues: []worker.QueueConfig{{Name: "a"}, {Name: "b", Fair: true, FairWeights: map[string]int{"big": 3}}, {Name: "c", Fair: true}}, Concurrency: 7})
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
	if got.ID != "w-1" || got.PID != os.Getpid() || got.Concurrency != 7 || len(got.Queues) != 3 || got.Heartbeat.IsZero() || got.Host == "" {
		t.Fatalf("worker info %+v", got)
	}
	if want := map[string]map[string]int{"b": {"big": 3}, "c": {}}; !reflect.DeepEqual(got.Fair, want) {
		t.Fatalf("worker's fair queues %v, want %v", got.Fair, want)
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if list, err := worker.Workers(ctx, b); err != nil || len(list) != 0 {
		t.Fatalf("after Stop: %+v, %v", list, err)
	}
}

// A worker's heartbeat reports the pickup latency of the jobs it started
// since the previous one.
func TestWorkersReportPickupLatency(t *testing.T) {
	ctx := context.Background()
	b := membackend.New(membackend.Config{})
	task := queue.NewTask[Args, queue.None]("registry.pickup", queue.TaskOptions{})
	ran := make(chan struct{}, 5)
	w := worker.New(b, worker.Config{ID: "w-p", LeaseDuration: 300 * time.Millisecond}) // a heartbeat every 100ms
	worker.Register(w, task, func(context.Context, Args) (queue.None, error) { ran <- struct{}{}; return queue.None{}, nil })
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	c := queue.NewClient(b, queue.Config{})
	for range 5 {
		if _, err := task.Enqueue(ctx, c, Args{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		<-ran
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		list, err := worker.Workers(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 1 && list[0].PickupP99 > 0 && list[0].PickupP50 <= list[0].PickupP99 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pickup latency reported: %+v", list)
		}
		time.Sleep(20 * time.Millisecond) // the heartbeat is on its own clock
	}
}
