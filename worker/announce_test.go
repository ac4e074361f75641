package worker_test

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
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

// announcements is a memory backend that hands every worker announcement
// it stores to a channel: a heartbeat's figures are each visible only
// until the next heartbeat (100 ms here), too briefly to catch by polling
// the list on a loaded machine.
type announcements struct {
	*membackend.Backend
	infos chan worker.Info
}

func (a *announcements) PutKV(ctx context.Context, p backends.PutKVParams) (int64, error) {
	v, err := a.Backend.PutKV(ctx, p)
	var in worker.Info
	if err == nil && strings.HasPrefix(p.Key, "workers/") && json.Unmarshal(p.Value, &in) == nil {
		select {
		case a.infos <- in:
		default: // the test stopped listening
		}
	}
	return v, err
}

// A worker's heartbeat reports the pickup latency of the jobs it started
// since the previous one.
func TestWorkersReportPickupLatency(t *testing.T) {
	ctx := context.Background()
	b := &announcements{Backend: membackend.New(membackend.Config{}), infos: make(chan worker.Info, 64)}
	task := queue.NewTask[Args, queue.None]("registry.pickup", queue.TaskOptions{})
	w := worker.New(b, worker.Config{ID: "w-p", LeaseDuration: 300 * time.Millisecond}) // a heartbeat every 100ms
	worker.Register(w, task, func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
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
	// Reads the announcements from here on, not after the jobs ran: the
	// wrapper drops what a full channel cannot take, so a slow start must
	// not fill it with heartbeats that carry no figures yet.
	timeout := time.After(30 * time.Second)
	for {
		select {
		case in := <-b.infos:
			if in.ID == "w-p" && in.PickupP99 > 0 && in.PickupP50 <= in.PickupP99 {
				return
			}
		case <-timeout:
			t.Fatal("no heartbeat reported a pickup latency")
		}
	}
}
