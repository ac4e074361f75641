package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/conveyorhq/conveyor/metrics"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/scheduler"
	"github.com/conveyorhq/conveyor/worker"
)

// workerCmd runs a worker with the app's tasks, and the scheduler, until
// the context ends. It parses its own flags (-h lists them).
func (e *env) workerCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "worker [flags]",
		Short:              "run a worker with the app's tasks, and the scheduler, until SIGINT/SIGTERM (-h: its flags)",
		DisableFlagParsing: true,
		RunE: func(c *cobra.Command, args []string) error {
			return e.runWorker(c, args)
		},
	}
}

func (e *env) runWorker(c *cobra.Command, args []string) error {
	ctx, out := c.Context(), c.OutOrStdout()
	fs := flag.NewFlagSet(c.CommandPath(), flag.ContinueOnError)
	fs.SetOutput(c.ErrOrStderr())
	db := fs.String("db", defaultDB(), "backend: a SQLite file or a URL (env CONVEYOR_DB)")
	queues := fs.String("queues", strings.Join(e.taskQueues(), ","), "comma-separated queues, highest priority first (default: the app's tasks' queues)")
	strict := fs.Bool("strict", false, "drain earlier queues first instead of weighted round robin")
	concurrency := fs.Int("concurrency", 10, "jobs running at once")
	lease := fs.Duration("lease", 30*time.Second, "lease length; a crashed worker's jobs return after it")
	drain := fs.Duration("drain", 30*time.Second, "on SIGTERM, how long running jobs may take to finish")
	schedPoll := fs.Duration("schedule-poll", time.Second, "how often the scheduler checks for due ticks")
	schedLease := fs.Duration("schedule-lease", 15*time.Second, "scheduler leader lease: a dead leader is replaced within it")
	metricsAddr := fs.String("metrics", "", "serve this process's Prometheus metrics on this address, at /metrics (empty: don't)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	var qs []worker.QueueConfig
	for _, q := range strings.Split(*queues, ",") {
		if q = strings.TrimSpace(q); q != "" {
			qs = append(qs, worker.QueueConfig{Name: q})
		}
	}
	switch {
	case fs.NArg() > 0:
		return usageErr(c, "unexpected argument %q", fs.Arg(0))
	case len(qs) == 0:
		return usageErr(c, "-queues names no queue")
	case *concurrency < 1:
		return usageErr(c, "-concurrency must be at least 1, not %d", *concurrency)
	case *lease <= 0 || *drain < 0 || *schedPoll <= 0 || *schedLease <= 0:
		return usageErr(c, "-lease, -schedule-poll and -schedule-lease must be positive, -drain not negative")
	case e.app.Register == nil:
		return fmt.Errorf("%s has no handlers to run (daemon.App.Register is nil)", e.app.Name)
	}
	w := *e
	w.db = *db
	b, err := w.open(ctx, mayCreate)
	if err != nil {
		return err
	}
	defer b.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg := worker.Config{
		Queues: qs, StrictPriority: *strict, Concurrency: *concurrency, LeaseDuration: *lease,
		Logger: log, Middleware: []worker.Middleware{worker.Logging(log)},
	}
	if *metricsAddr != "" {
		stop, err := serveMetrics(&cfg, *metricsAddr, out)
		if err != nil {
			return err
		}
		defer stop()
	}
	wk := worker.New(b, cfg)
	if err := e.app.Register(wk); err != nil {
		return err
	}
	// Every worker process runs the scheduler; one leads at a time.
	sched, err := scheduler.New(queue.NewClient(b, queue.Config{}), scheduler.Config{
		Tasks: e.app.Tasks, Poll: *schedPoll, LeaseFor: *schedLease, Logger: log,
	})
	if err != nil {
		return err
	}
	if err := sched.Register(e.app.Entries...); err != nil {
		return err
	}
	// The worker runs until the signal context ends; Stop then drains
	// with its own deadline, so a second signal is not needed.
	if err := wk.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	if err := sched.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	fmt.Fprintf(out, "worker %s on %s: queues %s, concurrency %d\n", wk.ID(), *db, *queues, *concurrency)
	<-ctx.Done()
	fmt.Fprintf(out, "draining (up to %s)...\n", *drain)
	dctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := sched.Stop(dctx); err != nil {
		log.Error("scheduler stop", "err", err)
	}
	return wk.Stop(dctx)
}

// serveMetrics serves the worker's Prometheus metrics on addr and sets
// cfg's observer to count into them.
func serveMetrics(cfg *worker.Config, addr string, out io.Writer) (stop func() error, err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Observer = metrics.New(reg)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	at, stop, err := serveHTTP(mux, addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "metrics on http://%s/metrics\n", at)
	return stop, nil
}

// taskQueues are the queues the app's tasks name, in the order of the
// tasks.
func (e *env) taskQueues() []string {
	var qs []string
	for _, d := range e.app.Tasks {
		if q := cmp.Or(d.Options().Queue, queue.DefaultQueue); !slices.Contains(qs, q) {
			qs = append(qs, q)
		}
	}
	return qs
}
