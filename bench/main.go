// Command bench measures Conveyor's backends side by side, in one run on one
// machine, and prints each figure with its ratio to the first backend of the
// run (the baseline; later backends add their peers, such as raw asynq on the
// same Redis, as further rows).
//
//	go run ./bench                       # memory and sqlite, default sizes
//	go run ./bench -n 20000 -rate 1000   # smaller
//
// Workloads, for each backend:
//   - enqueue single: one job per call, sequentially
//   - enqueue batch: -n jobs in batches of -batch
//   - burn-down: those -n no-op jobs drained by one worker (concurrency -c)
//   - latency: a steady -rate jobs/s for -duration while a worker runs;
//     enqueue-to-start p50, p99 and max
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
)

type config struct {
	n, batch, single, concurrency, rate int
	duration                            time.Duration
}

// target is one backend under test.
type target struct {
	name string
	open func(ctx context.Context, dir string) (backends.Backend, error)
}

var targets = []target{
	{"memory", func(context.Context, string) (backends.Backend, error) { return membackend.New(), nil }},
	{"sqlite", func(ctx context.Context, dir string) (backends.Backend, error) {
		return sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(dir, "bench.db")})
	}},
}

func main() {
	var cfg config
	flag.IntVar(&cfg.n, "n", 100_000, "jobs for the batch enqueue and burn-down")
	flag.IntVar(&cfg.batch, "batch", 1000, "jobs per batch")
	flag.IntVar(&cfg.single, "single", 5000, "jobs for the single enqueue")
	flag.IntVar(&cfg.concurrency, "c", 50, "worker concurrency")
	flag.IntVar(&cfg.rate, "rate", 2000, "jobs per second for the latency run")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "length of the latency run")
	only := flag.String("backends", "", "comma-separated backends to run (default all)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))

	fmt.Printf("conveyor bench: %s %s/%s, %d CPUs; n=%d batch=%d c=%d rate=%d/s for %s\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cfg.n, cfg.batch, cfg.concurrency, cfg.rate, cfg.duration)
	var rows []row
	for _, t := range targets {
		if *only != "" && !strings.Contains(","+*only+",", ","+t.name+",") {
			continue
		}
		fmt.Fprintf(os.Stderr, "running %s...\n", t.name)
		r, err := runTarget(t, cfg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench %s: %v\n", t.name, err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		rows = append(rows, r)
	}
	printTable(os.Stdout, rows)
}

// row is one backend's figures.
type row struct {
	name                string
	single, batch, burn float64 // jobs per second
	p50, p99, max       time.Duration
	latencyJobs         int
}

func runTarget(t target, cfg config) (row, error) {
	ctx := context.Background()
	r := row{name: t.name}
	fresh := func() (backends.Backend, func(), error) {
		dir, err := os.MkdirTemp("", "conveyor-bench-")
		if err != nil {
			return nil, nil, err
		}
		b, err := t.open(ctx, dir)
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return b, func() { b.Close(); os.RemoveAll(dir) }, nil
	}
	b, done, err := fresh()
	if err != nil {
		return r, err
	}
	if r.single, err = enqueueSingle(ctx, b, cfg.single); err != nil {
		return r, err
	}
	done()
	if b, done, err = fresh(); err != nil {
		return r, err
	}
	if r.batch, err = enqueueBatch(ctx, b, cfg.n, cfg.batch); err != nil {
		return r, err
	}
	if r.burn, err = burnDown(ctx, b, cfg.n, cfg.concurrency); err != nil {
		return r, err
	}
	done()
	if b, done, err = fresh(); err != nil {
		return r, err
	}
	defer done()
	lat, err := steadyLatency(ctx, b, cfg.rate, cfg.duration, cfg.concurrency)
	if err != nil {
		return r, err
	}
	r.p50, r.p99, r.max, r.latencyJobs = lat.quantile(0.50), lat.quantile(0.99), lat.quantile(1), len(lat)
	return r, nil
}

func printTable(out io.Writer, rows []row) {
	if len(rows) == 0 {
		return
	}
	base := rows[0]
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\tenqueue single/s\tenqueue batch/s\tburn-down/s\tp50\tp99\tmax\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.name,
			rate(r.single, base.single), rate(r.batch, base.batch), rate(r.burn, base.burn),
			ms(r.p50), ms(r.p99), ms(r.max))
	}
	tw.Flush()
	fmt.Fprintf(out, "ratios are to %s; latency is enqueue-to-start at a steady rate over %d jobs\n", base.name, base.latencyJobs)
}

func rate(v, base float64) string {
	return fmt.Sprintf("%.0f (%.2fx)", v, v/base)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
