package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/conveyorhq/conveyor/internal/demo"
	"github.com/conveyorhq/conveyor/metrics"
	"github.com/conveyorhq/conveyor/scheduler"
	"github.com/conveyorhq/conveyor/worker"
)

func runWorker(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	db := dbFlag(fs)
	queues := fs.String("queues", "default,payments", "comma-separated queues, highest priority first")
	strict := fs.Bool("strict", false, "drain earlier queues first instead of weighted round robin")
	concurrency := fs.Int("concurrency", 10, "jobs running at once")
	lease := fs.Duration("lease", 30*time.Second, "lease length; a crashed worker's jobs return after it")
	drain := fs.Duration("drain", 30*time.Second, "on SIGTERM, how long running jobs may take to finish")
	schedPoll := fs.Duration("schedule-poll", time.Second, "how often the scheduler checks for due ticks")
	schedLease := fs.Duration("schedule-lease", 15*time.Second, "scheduler leader lease: a dead leader is replaced within it")
	metricsAddr := fs.String("metrics", "", "serve this process's Prometheus metrics on this address, at /metrics (empty: don't)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := openBackend(ctx, *db)
	if err != nil {
		return err
	}
	defer b.Close()
	var qs []worker.QueueConfig
	for _, q := range strings.Split(*queues, ",") {
		qs = append(qs, worker.QueueConfig{Name: strings.TrimSpace(q)})
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg := worker.Config{
		Queues: qs, StrictPriority: *strict, Concurrency: *concurrency, LeaseDuration: *lease,
		Breakers: demo.Breakers, Logger: log, Middleware: []worker.Middleware{worker.Logging(log)},
	}
	if *metricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		cfg.Observer = metrics.New(reg)
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		at, stop, err := serveHTTP(mux, *metricsAddr)
		if err != nil {
			return err
		}
		defer stop()
		fmt.Fprintf(out, "metrics on http://%s/metrics\n", at)
	}
	w := worker.New(b, cfg)
	demo.Register(w, nil)
	// Every worker process runs the scheduler; one leads at a time.
	sched, err := newScheduler(b, scheduler.Config{Poll: *schedPoll, LeaseFor: *schedLease, Logger: log})
	if err != nil {
		return err
	}
	// The worker runs until the signal context ends; Stop then drains
	// with its own deadline, so a second signal is not needed.
	if err := w.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	if err := sched.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	fmt.Fprintf(out, "worker %s on %s: queues %s, concurrency %d\n", w.ID(), *db, *queues, *concurrency)
	<-ctx.Done()
	fmt.Fprintf(out, "draining (up to %s)...\n", *drain)
	dctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := sched.Stop(dctx); err != nil {
		log.Error("scheduler stop", "err", err)
	}
	return w.Stop(dctx)
}
