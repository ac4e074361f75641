// Command worker is the daemon tests' worker binary: daemon.Main around
// the tasks of package tasks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/conveyorhq/conveyor/daemon"
	"github.com/conveyorhq/conveyor/daemon/testdata/tasks"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

var (
	running atomic.Int64
	mu      sync.Mutex
	leaked  [][]byte
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("pid", os.Getpid())
	app := daemon.App{
		Name:  "testworker",
		Tasks: []queue.Definition{tasks.Sleep, tasks.Fail, tasks.Leak, tasks.Batches},
		Register: func(w *worker.Worker) error {
			worker.Register(w, tasks.Sleep, func(ctx context.Context, a tasks.SleepArgs) (queue.None, error) {
				j, _ := worker.JobFromContext(ctx)
				log.Info("job running", "job", j.ID, "running", running.Add(1))
				defer running.Add(-1)
				select {
				case <-ctx.Done():
					log.Info("job cancelled", "job", j.ID, "cause", context.Cause(ctx))
					return queue.None{}, context.Cause(ctx)
				case <-timeAfterMs(a.Ms):
				}
				log.Info("job done", "job", j.ID)
				return queue.None{}, nil
			})
			worker.Register(w, tasks.Fail, func(ctx context.Context, _ struct{}) (queue.None, error) {
				return queue.None{}, errors.New("always fails")
			})
			worker.Register(w, tasks.Leak, func(ctx context.Context, a tasks.LeakArgs) (queue.None, error) {
				b := make([]byte, a.MiB<<20)
				for i := range b {
					b[i] = 1 // touched, so it is resident
				}
				mu.Lock()
				leaked = append(leaked, b)
				mu.Unlock()
				return queue.None{}, nil
			})
			worker.Register(w, tasks.Batches, func(ctx context.Context, a tasks.BatchesArgs) (queue.None, error) {
				return queue.None{}, worker.Iterate(ctx, func(ctx context.Context, batch int) (int, bool, error) {
					<-timeAfterMs(20) // the batch's work
					log.Info("batch done", "batch", batch)
					return batch + 1, batch+1 == a.N, nil
				})
			})
			return nil
		},
		OnError: func(ctx context.Context, f daemon.Failure) {
			log.Info("error report", "job", f.Job.ID, "attempt", f.Attempt, "dead", f.Dead, "err", f.Err)
		},
	}
	err := daemon.Main(context.Background(), app, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(daemon.ExitCode(err))
}
