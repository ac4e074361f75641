// Command worker is the README's worker daemon snippet, compiled.
package main

import (
	"context"
	"os"

	"github.com/conveyorhq/conveyor/daemon"
	"github.com/conveyorhq/conveyor/examples/readme/tasks"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

var app = daemon.App{
	Name:  "app-worker",
	Tasks: []queue.Definition{tasks.SendWelcome},
	Register: func(w *worker.Worker) error {
		worker.Register(w, tasks.SendWelcome, sendWelcome)
		return nil
	},
}

func main() {
	err := daemon.Main(context.Background(), app, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(daemon.ExitCode(err))
}

func sendWelcome(context.Context, tasks.WelcomeArgs) (queue.None, error) { return queue.None{}, nil }
