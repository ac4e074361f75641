// Command bench measures Conveyor's backends side by side with their peers,
// in one run on one machine and the same servers, and prints each figure
// with its ratio to the row it is compared with: Conveyor on SQLite to River
// on SQLite (riversqlite, the same modernc.org/sqlite driver), Conveyor
// on Redis to raw asynq on the same Redis, Conveyor on PostgreSQL to River on
// the same server, Conveyor on RabbitMQ to a raw amqp091-go publisher and
// consumer on the same broker.
//
//	go run ./bench                        # every row whose server answers
//	go run ./bench -backends redis,asynq  # some rows
//	go run ./bench -n 20000 -rate 1000    # smaller
//
// Workloads, for each row:
//   - enqueue single: one job per call, sequentially
//   - enqueue batch: -n jobs in batches of -batch (asynq has no batch
//     enqueue; its row enqueues from 50 goroutines, its fastest way)
//   - burn-down: -n no-op jobs enqueued, then drained by one worker process,
//     once per concurrency in -c
//   - latency: a steady -rate jobs/s for -duration while a worker runs;
//     enqueue-to-start p50, p99 and max
//
// With -rounds N every row runs N times, the rows taking turns, and each
// figure is the median of its N: a noisy neighbour or a slow minute then
// weighs on a row and its peer alike instead of deciding a ratio.
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
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
)

type config struct {
	n, batch, single, rate int
	rounds                 int
	concurrency            []int // burn-down runs once per value; latency uses the first
	sleepJobs, bigJobs     int
	soak                   int
	duration               time.Duration
	redisAddr, postgresURL string
	rabbitURL              string
}

// target is one row of the table: a Conveyor backend, or the peer it is
// compared with (raw asynq on the same Redis, ...).
type target struct {
	name string
	vs   string // the row this one's ratios are to; empty: none
	// needs returns why the target cannot run on this machine (no server),
	// or "" when it can.
	needs func(cfg config) string
	run   func(ctx context.Context, cfg config) (row, error)
	// drainOnly rows measure the burn-down at the first concurrency and
	// the latency, nothing else (the Celery rows: Python enqueues).
	drainOnly bool
	// open is a Conveyor row's fresh backend, for the -grow workloads
	// that drive the backend itself; nil for a peer.
	open func(ctx context.Context, cfg config) (backends.Backend, func(), error)
}

// conveyor makes the target of a Conveyor backend: open returns a fresh,
// empty backend and a function that closes it and cleans up.
func conveyor(name, vs string, needs func(config) string, open func(ctx context.Context, cfg config) (backends.Backend, func(), error)) target {
	return target{name: name, vs: vs, needs: needs, open: open, run: func(ctx context.Context, cfg config) (row, error) {
		return runConveyor(ctx, cfg, name, open)
	}}
}

func always(config) string { return "" }

var targets = []target{
	conveyor("memory", "", always, func(context.Context, config) (backends.Backend, func(), error) {
		b := membackend.New(membackend.Config{})
		return b, func() { b.Close() }, nil
	}),
	{name: "river-sqlite", needs: always, run: runRiverSQLite},
	conveyor("sqlite", "river-sqlite", always, func(ctx context.Context, _ config) (backends.Backend, func(), error) {
		dir, err := os.MkdirTemp("", "conveyor-bench-")
		if err != nil {
			return nil, nil, err
		}
		b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(dir, "bench.db")})
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return b, func() { b.Close(); os.RemoveAll(dir) }, nil
	}),
	{name: "asynq", needs: needRedis, run: runAsynq},
	conveyor("redis", "asynq", needRedis, openRedis),
	{name: "river", needs: needPostgres, run: runRiver},
	conveyor("postgres", "river", needPostgres, openPostgres),
	{name: "amqp091", needs: needRabbit, run: runRawAMQP},
	conveyor("amqp", "amqp091", needRabbit, openAMQP),
}

func main() {
	var cfg config
	flag.IntVar(&cfg.n, "n", 100_000, "jobs for the batch enqueue and burn-down")
	flag.IntVar(&cfg.batch, "batch", 1000, "jobs per batch")
	flag.IntVar(&cfg.single, "single", 5000, "jobs for the single enqueue")
	flag.IntVar(&cfg.rounds, "rounds", 1, "times to run every row, taking turns; figures are the medians")
	conc := flag.String("c", "50,200", "worker concurrency for the burn-down, comma-separated; latency uses the first")
	flag.IntVar(&cfg.rate, "rate", 2000, "jobs per second for the latency run")
	flag.IntVar(&cfg.sleepJobs, "sleepjobs", 10_000, "jobs that sleep 10ms each, run at concurrency 200 (0: skip)")
	flag.IntVar(&cfg.bigJobs, "bigjobs", 200, "jobs with a 1 MB payload (0: skip)")
	flag.IntVar(&cfg.soak, "soak", 0, "after the other workloads, push this many jobs through one worker and report its memory (0: skip)")
	svg := flag.String("svg", "", "write a plot of latency over time during the latency run to this SVG file")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "length of the latency run")
	flag.StringVar(&cfg.redisAddr, "redis", envOr("CONVEYOR_REDIS_ADDR", "127.0.0.1:6379"), "Redis host:port for the redis and asynq rows (its database 5 is flushed)")
	flag.StringVar(&cfg.postgresURL, "postgres", envOr("CONVEYOR_POSTGRES_URL", "postgres://localhost:5432/postgres"), "PostgreSQL URL for the postgres and river rows (schemas bench_conveyor and bench_river are dropped)")
	flag.StringVar(&cfg.rabbitURL, "rabbitmq", envOr("CONVEYOR_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"), "RabbitMQ URL for the amqp and amqp091 rows (their queues are deleted after each workload)")
	only := flag.String("backends", "", "comma-separated rows to run (default all whose server answers)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	grow := growFlags() // -grow: the how-cost-grows workloads (grow.go)
	flag.Parse()
	for _, f := range strings.Split(*conc, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			fmt.Fprintf(os.Stderr, "bench: bad -c %q\n", *conc)
			os.Exit(2)
		}
		cfg.concurrency = append(cfg.concurrency, c)
	}
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
	redis.SetLogger(quietRedis{})

	cfg.rounds = max(cfg.rounds, 1)
	checkBackends(*only)
	fmt.Printf("conveyor bench: %s %s/%s, %d CPUs; n=%d batch=%d c=%v rate=%d/s for %s, %d round(s)\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cfg.n, cfg.batch, cfg.concurrency, cfg.rate, cfg.duration, cfg.rounds)
	if workflowsOnly() { // -workflows=only (workflows.go)
		runWorkflows(cfg, *only)
		return
	}
	run := pick(targets, *only, "", func(t target) (string, string) { return t.name, t.needs(cfg) })
	if grow.asked() {
		if err := runGrow(context.Background(), cfg, grow, run); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		return
	}
	rounds := make([][]row, len(run)) // by target, one per round
	for round := range cfg.rounds {
		for i, t := range run {
			fmt.Fprintf(os.Stderr, "running %s (round %d of %d)...\n", t.name, round+1, cfg.rounds)
			r, err := t.run(context.Background(), cfg)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench %s: %v\n", t.name, err)
				pprof.StopCPUProfile()
				os.Exit(1)
			}
			r.vs = t.vs
			rounds[i] = append(rounds[i], r)
			if cfg.rounds > 1 { // each round's figures, to see the spread behind the medians
				fmt.Fprintf(os.Stderr, "  %s round %d: single %.0f/s, batch %.0f/s, burn-down %.0f/s, p99 %s\n",
					t.name, round+1, r.single, r.batch, r.burn, ms(r.p99))
			}
		}
	}
	var rows []row
	for _, rs := range rounds {
		rows = append(rows, median(rs))
	}
	printTable(os.Stdout, rows, cfg)
	if *svg != "" {
		if err := writeSVG(*svg, rows, cfg); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	runWorkflows(cfg, *only) // unless -workflows=off (workflows.go)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// row is one target's figures.
type row struct {
	name, vs      string
	single, batch float64   // jobs per second
	burn          []float64 // jobs per second, one per cfg.concurrency
	sleep, big    float64   // jobs per second: 10ms jobs at concurrency 200; 1 MB payloads
	p50, p99, max time.Duration
	latencyJobs   int
	series        []point // the latency run, for the plot
	rssStart      int64   // bytes, after a tenth of the soak; 0 without one
	rssEnd        int64
}

// median is a row whose every figure is the median of that figure in rs
// (the upper one of an even count); the latency series, for the plot, and
// the soak's memory come from the last round.
func median(rs []row) row {
	out := rs[len(rs)-1]
	mid := func(get func(row) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	dur := func(get func(row) time.Duration) time.Duration {
		return time.Duration(mid(func(r row) float64 { return float64(get(r)) }))
	}
	out.single = mid(func(r row) float64 { return r.single })
	out.batch = mid(func(r row) float64 { return r.batch })
	out.burn = slices.Clone(out.burn)
	for i := range out.burn {
		out.burn[i] = mid(func(r row) float64 { return r.burn[i] })
	}
	out.sleep = mid(func(r row) float64 { return r.sleep })
	out.big = mid(func(r row) float64 { return r.big })
	out.p50 = dur(func(r row) time.Duration { return r.p50 })
	out.p99 = dur(func(r row) time.Duration { return r.p99 })
	out.max = dur(func(r row) time.Duration { return r.max })
	return out
}

func runConveyor(ctx context.Context, cfg config, name string, open func(context.Context, config) (backends.Backend, func(), error)) (row, error) {
	r := row{name: name}
	b, done, err := open(ctx, cfg)
	if err != nil {
		return r, err
	}
	r.single, err = enqueueSingle(ctx, b, cfg.single)
	done()
	if err != nil {
		return r, err
	}
	err = runDrains(cfg, &r, func(n, c int, args noopArgs, enqueueRate *float64) (float64, error) {
		b, done, err := open(ctx, cfg)
		if err != nil {
			return 0, err
		}
		defer done()
		batch := cfg.batch
		if args != (noopArgs{}) {
			batch = min(batch, 10) // 1 MB payloads: ten to a call
		}
		rate, err := enqueueBatch(ctx, b, n, batch, args)
		if enqueueRate != nil {
			*enqueueRate = rate
		}
		if err != nil {
			return 0, err
		}
		return burnDown(ctx, b, n, c)
	})
	if err != nil {
		return r, err
	}
	if b, done, err = open(ctx, cfg); err != nil {
		return r, err
	}
	defer done()
	rec, err := steadyLatency(ctx, b, cfg.rate, cfg.duration, cfg.concurrency[0])
	if err != nil {
		return r, err
	}
	r.setLatency(rec)
	if cfg.soak > 0 {
		b2, done2, err := open(ctx, cfg)
		if err != nil {
			return r, err
		}
		defer done2()
		if r.rssStart, r.rssEnd, err = soak(ctx, b2, cfg.soak, cfg.concurrency[0]); err != nil {
			return r, err
		}
	}
	return r, nil
}

// bigPad makes a job's payload about 1 MB.
var bigPad = strings.Repeat("x", 1_000_000-100)

func (r *row) setLatency(rec *recorder) {
	rec.mu.Lock()
	lat := rec.lat
	rec.mu.Unlock()
	r.p50, r.p99, r.max, r.latencyJobs = lat.quantile(0.50), lat.quantile(0.99), lat.quantile(1), len(lat)
	r.series = rec.series()
}

func printTable(out io.Writer, rows []row, cfg config) {
	byName := map[string]row{}
	for _, r := range rows {
		byName[r.name] = r
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "backend\tenqueue single/s\tenqueue batch/s\t")
	for _, c := range cfg.concurrency {
		fmt.Fprintf(tw, "burn-down c=%d/s\t", c)
	}
	fmt.Fprintln(tw, "10ms jobs c=200/s\t1MB jobs/s\tp50\tp99\tmax\tvs\t")
	for _, r := range rows {
		base, ok := byName[r.vs]
		if !ok {
			base = r
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t", r.name, rate(r.single, base.single, ok), rate(r.batch, base.batch, ok))
		for i := range cfg.concurrency {
			fmt.Fprintf(tw, "%s\t", rate(r.burn[i], base.burn[i], ok))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", rate(r.sleep, base.sleep, ok), rate(r.big, base.big, ok), ms(r.p50), ms(r.p99), ms(r.max), r.vs)
	}
	tw.Flush()
	fmt.Fprintf(out, "ratios are to the row named in vs; latency is enqueue-to-start at %d jobs/s for %s\n", cfg.rate, cfg.duration)
	for _, r := range rows {
		if r.rssEnd > 0 {
			fmt.Fprintf(out, "%s soak of %d jobs: bench process RSS %.1f MB after the first tenth, %.1f MB at the end\n",
				r.name, cfg.soak, float64(r.rssStart)/1e6, float64(r.rssEnd)/1e6)
		}
	}
}

// rate prints a figure with its ratio to the peer's; a figure the row
// does not measure (0) is a dash, and so is a ratio to one the peer does
// not.
func rate(v, base float64, compared bool) string {
	switch {
	case v == 0:
		return "-"
	case !compared || base == 0:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.0f (%.2fx)", v, v/base)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// checkBackends refuses a -backends name no row has: a typo must not
// drop a row unseen.
func checkBackends(only string) {
	var names []string
	for _, t := range targets {
		names = append(names, t.name)
	}
	for _, t := range wfTargets {
		names = append(names, wfName(t))
	}
	for _, name := range strings.Split(only, ",") {
		if name != "" && !slices.Contains(names, name) {
			fmt.Fprintf(os.Stderr, "bench: -backends names %q; the rows are %s\n", name, strings.Join(slices.Compact(slices.Sorted(slices.Values(names))), ","))
			os.Exit(1)
		}
	}
}

// pick returns the rows of all that -backends asks for (every row when
// only is empty) and whose servers answer. A row that cannot run is
// skipped with a line on stderr, unless it was asked for by name: then
// the command fails. desc returns a row's name as -backends spells it and
// why it cannot run ("" when it can); what follows the name in messages.
func pick[T any](all []T, only, what string, desc func(T) (name, why string)) []T {
	var run []T
	for _, t := range all {
		name, why := desc(t)
		asked := only != "" && strings.Contains(","+only+",", ","+name+",")
		if only != "" && !asked {
			continue
		}
		if why != "" {
			if asked {
				fmt.Fprintf(os.Stderr, "bench %s%s: %s\n", name, what, why)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "skipping %s%s: %s\n", name, what, why)
			continue
		}
		run = append(run, t)
	}
	return run
}
