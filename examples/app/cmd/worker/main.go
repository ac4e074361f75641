// Command worker is an app's own worker binary: its tasks and handlers in
// a daemon.App, and daemon.Main for the rest (configuration from flags,
// CONVEYOR_* and a config file, signals, health, supervised processes).
// It is a module of its own because the daemon opens any backend by URL,
// which brings every server driver; the app's tasks and web process need
// none of them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/conveyorhq/conveyor/daemon"
	"github.com/conveyorhq/conveyor/examples/app/tasks"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

var app = daemon.App{
	Name:  "app-worker",
	Tasks: []queue.Definition{tasks.SendWelcome},
	Register: func(w *worker.Worker) error {
		worker.Register(w, tasks.SendWelcome, func(ctx context.Context, a tasks.WelcomeArgs) (queue.None, error) {
			slog.InfoContext(ctx, "sending welcome email", "user", a.UserID, "to", a.Email)
			return queue.None{}, nil // call the SMTP server here; return its error to retry
		})
		return nil
	},
	OnError: func(ctx context.Context, f daemon.Failure) {
		// Send f.Err (and f.Stack) to an error tracker here.
		slog.ErrorContext(ctx, "job failed", "job", f.Job.ID, "task", f.Job.Task, "attempt", f.Attempt, "dead", f.Dead, "err", f.Err)
	},
}

// Run it with `worker -db app.db -queues email -breakers smtp:10:1m`, or
// `worker -config worker.toml`.
func main() {
	err := daemon.Main(context.Background(), app, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(daemon.ExitCode(err))
}
