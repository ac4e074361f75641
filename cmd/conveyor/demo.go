package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/internal/demo"
)

func runDemo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	db := fs.String("db", "", "SQLite database file (default: a new file in a temporary directory)")
	greetings := fs.Int("greetings", 60, "jobs that succeed")
	flaky := fs.Int("flaky", 10, "jobs that fail twice, then succeed")
	charges := fs.Int("charges", 15, "jobs behind the payments circuit breaker")
	outage := fs.Duration("outage", 3*time.Second, "how long the payment API is down")
	dash := fs.String("dashboard", "127.0.0.1:0", "serve the dashboard here while the demo runs (empty: don't)")
	stay := fs.Bool("stay", false, "keep serving the dashboard after the jobs finish, until SIGINT/SIGTERM")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := *db
	if path == "" {
		dir, err := os.MkdirTemp("", "conveyor-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "demo.db")
	}
	b, err := openBackend(ctx, path)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(out, "conveyor demo on the embedded SQLite backend (%s)\n", path)
	if *dash != "" {
		stop, err := serveDashboard(dashboard.Config{Backend: b}, *dash, out)
		if err != nil {
			return err
		}
		defer stop()
	}
	if err := demo.Run(ctx, b, demo.Scenario{Greetings: *greetings, Flaky: *flaky, Charges: *charges, Outage: *outage}, out); err != nil {
		return err
	}
	if *stay && *dash != "" {
		fmt.Fprintln(out, "the dashboard stays up until SIGINT/SIGTERM")
		<-ctx.Done()
	}
	return nil
}
