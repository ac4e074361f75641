// Command conveyor runs workers, enqueues and inspects jobs, manages
// periodic tasks and the PostgreSQL schema, serves the dashboard, and plays
// a demo, on any backend.
//
//	conveyor demo                        a worker, sample jobs and a live summary
//	conveyor worker  [-queues a,b] ...   run the sample tasks until SIGINT/SIGTERM
//	conveyor enqueue TASK JSON           enqueue one job by task name
//	conveyor inspect queues|workers|job ID|dead|replay ID...|pause Q|resume Q
//	conveyor schedule add|list|remove|pause|resume ...
//	conveyor migrate -db postgres://...  the PostgreSQL schema, up or down
//	conveyor dashboard [-addr 127.0.0.1:8080]  the dashboard
//
// Every command takes -db PATH-OR-URL (default $CONVEYOR_DB, else
// conveyor.db): a SQLite path or any URL of package backends/open. The
// stock worker knows the sample tasks of internal/demo; an app builds its
// own worker binary with its own tasks, as examples/app/cmd/worker shows.
//
// Binaries are the only place Conveyor handles OS signals: SIGINT or
// SIGTERM drains the worker gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name, usage string
	run         func(ctx context.Context, args []string, out io.Writer) error
}

var commands = []command{
	{"demo", "run a worker on sample jobs and print a live summary", runDemo},
	{"worker", "run a worker with the sample tasks until SIGINT/SIGTERM", runWorker},
	{"enqueue", "enqueue a job: enqueue [flags] TASK JSON", runEnqueue},
	{"schedule", "manage periodic tasks: schedule add [-misfire skip|once|catchup] NAME SCHEDULE TASK JSON | list | remove NAME | pause NAME | resume NAME", runSchedule},
	{"migrate", "apply the PostgreSQL schema migrations: migrate [-to N] [-schema S]", runMigrate},
	{"inspect", "inspect queues and jobs: inspect queues|workers|job ID|dead|replay ID...|replay-all QUEUE|pause QUEUE|resume QUEUE", runInspect},
	{"dashboard", "serve the dashboard API: dashboard [-addr 127.0.0.1:8080] [-read-only] [-user U]", runDashboard},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "conveyor:", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 {
		for _, c := range commands {
			if c.name == args[0] {
				return c.run(ctx, args[1:], out)
			}
		}
	}
	fmt.Fprintln(out, "usage: conveyor COMMAND [flags]")
	for _, c := range commands {
		fmt.Fprintf(out, "  %-8s %s\n", c.name, c.usage)
	}
	return flag.ErrHelp
}

// dbFlag adds the -db flag every command shares.
func dbFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("CONVEYOR_DB")
	if def == "" {
		def = "conveyor.db"
	}
	return fs.String("db", def, "SQLite database file, or a postgres://, redis://, redis+cluster://host:port,... or amqp://...?store=<db> URL (env CONVEYOR_DB)")
}
