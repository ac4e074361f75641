package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/conveyorhq/conveyor/internal/demo"
)

func runDemo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	db := fs.String("db", "", "SQLite database file (default: a new file in a temporary directory)")
	greetings := fs.Int("greetings", 60, "jobs that succeed")
	flaky := fs.Int("flaky", 10, "jobs that fail twice, then succeed")
	charges := fs.Int("charges", 15, "jobs behind the payments circuit breaker")
	outage := fs.Duration("outage", 3*time.Second, "how long the payment API is down")
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
	return demo.Run(ctx, b, demo.Scenario{Greetings: *greetings, Flaky: *flaky, Charges: *charges, Outage: *outage}, out)
}
