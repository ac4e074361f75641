// Package faulttest holds fault drills that server backends' tests share.
// It is imported by tests only.
package faulttest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// Server is a server the drill can stop and start again.
type Server interface {
	Stop()
	Start()
}

// RestartParams tunes RideOutRestart to a backend.
type RestartParams struct {
	Server string        // its name, for messages
	Queue  string        // the drill's queue
	Poll   time.Duration // the worker's poll interval
	Jobs   int           // jobs to see run before the restart, and again after it
	After  time.Duration // how long those after the restart may take
}

type drillArgs struct{ N int }

// RideOutRestart stops and starts srv while a worker runs jobs on b and an
// enqueuer keeps enqueuing. It waits until enqueues fail while the server
// is down, and checks that the worker carries on afterwards and that every
// job whose enqueue succeeded runs, with none left unfinished or dead.
func RideOutRestart(t *testing.T, b backends.Backend, srv Server, p RestartParams) {
	ctx := context.Background()
	task := queue.NewTask[drillArgs, queue.None]("restart.job", queue.TaskOptions{Queue: p.Queue})
	c := queue.NewClient(b, queue.Config{})
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: p.Queue}}, Concurrency: 8,
		LeaseDuration: 2 * time.Second, PollInterval: p.Poll})
	var mu sync.Mutex
	ran := map[int]int{}
	worker.Register(w, task, func(ctx context.Context, a drillArgs) (queue.None, error) {
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		ran[a.N]++
		mu.Unlock()
		return queue.None{}, nil
	})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)

	// The enqueuer counts what the server acknowledged; during the outage
	// its enqueues fail with an error, and it carries on.
	var enqueued []int
	var failed atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := task.Enqueue(ctx, c, drillArgs{N: i}, nil); err != nil {
				failed.Add(1)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			mu.Lock()
			enqueued = append(enqueued, i)
			mu.Unlock()
		}
	}()
	progress := func(n int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(ran) >= n
		}
	}
	testenv.WaitFor(t, 30*time.Second, "jobs before the restart", progress(p.Jobs))
	srv.Stop()
	testenv.WaitFor(t, 30*time.Second, "enqueues to fail while "+p.Server+" is down", func() bool { return failed.Load() >= 3 })
	srv.Start()
	mu.Lock()
	before := len(ran)
	mu.Unlock()
	testenv.WaitFor(t, p.After, "jobs after the restart", progress(before+p.Jobs))
	close(stop)
	<-done
	testenv.WaitFor(t, 60*time.Second, "every acknowledged job to run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, i := range enqueued {
			if ran[i] == 0 {
				return false
			}
		}
		return true
	})
	in := b.(backends.Inspector)
	testenv.WaitFor(t, 30*time.Second, "no job left unfinished", func() bool {
		st, err := in.QueueStats(ctx, backends.QueueStatsParams{Queue: p.Queue})
		if err != nil || len(st) != 1 {
			t.Fatalf("QueueStats = %v, %v", st, err)
		}
		n := st[0].Counts
		return n[job.Running]+n[job.Pending]+n[job.Retrying]+n[job.Scheduled] == 0 && n[job.Dead] == 0
	})
	t.Logf("%d jobs enqueued, %d ran, %d enqueues refused during the outage", len(enqueued), len(ran), failed.Load())
}
