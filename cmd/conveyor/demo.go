package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyorhq/conveyor/backends/open"
	"github.com/conveyorhq/conveyor/daemon"
	"github.com/conveyorhq/conveyor/daemon/cli"
	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/internal/demo"
	"github.com/conveyorhq/conveyor/worker"
)

// demoApp is the stock binary's app: the demo's sample tasks.
var demoApp = daemon.App{
	Name:  "conveyor",
	Tasks: demo.Tasks,
	Register: func(w *worker.Worker) error {
		demo.Register(w, nil)
		return nil
	},
}

// demoCmd plays the demo scenario on a SQLite file: a fresh one in a
// temporary directory unless --db names one on the command line ($CONVEYOR_DB
// is the operator's database, not the demo's).
func demoCmd() *cobra.Command {
	var sc demo.Scenario
	var dash string
	var stay bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "a worker on sample jobs with a live summary, and the dashboard, on a fresh SQLite file",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, out := c.Context(), c.OutOrStdout()
			path := c.Flag("db").Value.String()
			if !c.Flag("db").Changed {
				dir, err := os.MkdirTemp("", "conveyor-demo-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				path = filepath.Join(dir, "demo.db")
			}
			b, err := open.URL(ctx, path, open.Options{Migrate: true})
			if err != nil {
				return err
			}
			defer b.Close()
			fmt.Fprintf(out, "conveyor demo on %s\n", path)
			if dash != "" {
				stop, err := cli.ServeDashboard(dashboard.Config{Backend: b}, dash, out)
				if err != nil {
					return err
				}
				defer stop()
			}
			if err := demo.Run(ctx, b, sc, out); err != nil {
				return err
			}
			if stay && dash != "" {
				fmt.Fprintln(out, "the dashboard stays up until SIGINT/SIGTERM")
				<-ctx.Done()
			}
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&sc.Greetings, "greetings", 60, "jobs that succeed")
	f.IntVar(&sc.Flaky, "flaky", 10, "jobs that fail twice, then succeed")
	f.IntVar(&sc.Charges, "charges", 15, "jobs behind the payments circuit breaker")
	f.DurationVar(&sc.Outage, "outage", 3*time.Second, "how long the payment API is down")
	f.StringVar(&dash, "dashboard", "127.0.0.1:0", "serve the dashboard here while the demo runs (empty: don't)")
	f.BoolVar(&stay, "stay", false, "keep serving the dashboard after the jobs finish, until SIGINT/SIGTERM")
	return c
}
