package daemon

import (
	"context"

	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/scheduler"
	"github.com/conveyorhq/conveyor/worker"
)

// App is what an application brings to its worker binary: its tasks and
// the handlers for them. The daemon (Run) and the CLI (package cli) take
// the same App, so `yourbinary worker`, `yourbinary enqueue` and
// `yourbinary inspect` all know the app's tasks.
type App struct {
	// Name names the binary in logs, help and process titles.
	// Default "conveyor".
	Name string
	// Version is printed by the CLI's `version`. Default the module
	// version from the binary's build information.
	Version string
	// Tasks are the app's task definitions: the CLI's enqueue checks
	// task names and arguments against them, the scheduler fires them.
	Tasks []queue.Definition
	// Register adds the app's handlers to a worker (worker.Register for
	// each task). Required to run a worker.
	Register func(w *worker.Worker) error
	// Entries are periodic entries every worker process registers with
	// its scheduler (one process leads at a time). Default none.
	Entries []scheduler.Entry
	// OnError is called for every failed attempt and every dead letter,
	// with the job, the attempt, the error chain and a panic's stack: the
	// place to send them to an error tracker (a Sentry adapter is a few
	// lines around sentry.CaptureException). It runs on the job's
	// goroutine after the outcome is recorded, so it should be quick.
	// Default none.
	OnError func(ctx context.Context, f Failure)
}
