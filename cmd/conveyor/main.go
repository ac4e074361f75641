// Command conveyor is Conveyor's command line (package daemon/cli) with the
// demo's sample tasks, plus `conveyor demo`: a worker, sample jobs and a
// live summary on a fresh SQLite file. `conveyor -h` lists the commands;
// every command takes --db PATH-OR-URL (default $CONVEYOR_DB, else
// conveyor.db). An app builds the same command line around its own tasks
// with cli.Main.
//
// Binaries are the only place Conveyor handles OS signals: SIGINT or
// SIGTERM drains the worker gracefully.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/conveyorhq/conveyor/daemon/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command line with the demo app and the demo command.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := cli.Command(demoApp)
	root.AddCommand(demoCmd())
	return cli.Execute(ctx, root, args, stdout, stderr)
}
