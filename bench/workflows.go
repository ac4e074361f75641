package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
	"github.com/conveyorhq/conveyor/workflow"
)

// The workflow rows (issue 16): what a workflow's bookkeeping costs next
// to the same number of plain jobs, in the same run on the same backend,
// each workload on a fresh backend with one worker process (the engine
// installed on it and running) at the first -c concurrency:
//
//   - chord: one chord of -wfn no-op members and a no-op callback, from
//     the Enqueue call to the callback's completion, against -wfn plain
//     no-op jobs enqueued in batches of -batch, from the first enqueue to
//     the last completion.
//   - chains: -wfchains chains of -wfsteps no-op steps, enqueued -batch
//     chains an EnqueueMany, until every chain's last step completed,
//     against as many plain jobs in batches.
//   - callback latency: -wflat chords of -wflatn members one after the
//     other; for each, the callback's start minus its last member's
//     completion (p50, p99, max), against a plain job's enqueue-to-start
//     when it is enqueued as a job completes (one at a time, -wflat of
//     them): the floor any engine's callback pays.
//
// The rows keep to namespaces of their own (schema bench_workflows, Redis
// key prefix bench-wf-..., broker names bench-wf-...), so they share the
// servers with the other rows.

// wfConfig sizes the workflow workloads.
type wfConfig struct {
	mode                  string // on, off, only
	members               int
	chains, steps         int
	latChords, latMembers int
}

var wfFlags wfConfig

func init() {
	flag.StringVar(&wfFlags.mode, "workflows", "on", "the workflow rows: on (after the others), off, or only")
	flag.IntVar(&wfFlags.members, "wfn", 10_000, "members of the chord workload")
	flag.IntVar(&wfFlags.chains, "wfchains", 1000, "chains of the chains workload")
	flag.IntVar(&wfFlags.steps, "wfsteps", 10, "steps of each chain")
	flag.IntVar(&wfFlags.latChords, "wflat", 100, "chords of the callback-latency workload, one after the other")
	flag.IntVar(&wfFlags.latMembers, "wflatn", 100, "members of each callback-latency chord")
}

// workflowsOnly reports -workflows=only: the other rows do not run.
func workflowsOnly() bool { return wfFlags.mode == "only" }

// wfTarget is a Conveyor backend the workflow rows run on.
type wfTarget struct {
	name  string
	needs func(cfg config) string
	open  opener
}

var wfTargets = []wfTarget{
	{"memory", always, func(context.Context, config) (backends.Backend, func(), error) {
		b := membackend.New(membackend.Config{})
		return b, func() { b.Close() }, nil
	}},
	{"sqlite", always, openWFSQLite},
	{"redis", needRedis, func(ctx context.Context, cfg config) (backends.Backend, func(), error) {
		return openWFRedis(ctx, cfg, benchName("wf"))
	}},
	{"postgres", needPostgres, openWFPostgres},
	{"amqp+redis", func(cfg config) string { return needRabbit(cfg) + needRedis(cfg) }, openWFAMQP},
}

func openWFSQLite(ctx context.Context, _ config) (backends.Backend, func(), error) {
	dir, err := os.MkdirTemp("", "conveyor-bench-wf-")
	if err != nil {
		return nil, nil, err
	}
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(dir, "wf.db")})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return b, func() { b.Close(); os.RemoveAll(dir) }, nil
}

// openWFRedis opens a backend under prefix in the bench database and
// deletes its keys afterwards (no flush: other rows may be running).
func openWFRedis(ctx context.Context, cfg config, prefix string) (*redisbackend.Backend, func(), error) {
	c := redis.NewClient(&redis.Options{Addr: cfg.redisAddr, DB: benchDB, PoolSize: 64})
	b, err := redisbackend.New(ctx, redisbackend.Config{Client: c, Prefix: prefix})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return b, func() {
		b.Close()
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		c.Close()
	}, nil
}

const wfSchema = "bench_workflows"

func openWFPostgres(ctx context.Context, cfg config) (backends.Backend, func(), error) {
	pool, err := freshSchema(ctx, cfg, wfSchema)
	if err != nil {
		return nil, nil, err
	}
	b, err := pgbackend.New(ctx, pgbackend.Config{Pool: pool, Schema: wfSchema, Migrate: true})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return b, func() { b.Close(); pool.Close() }, nil
}

// openWFAMQP opens the broker with a Redis store: workflows need the
// store's KVStore and lookups by ID.
func openWFAMQP(ctx context.Context, cfg config) (backends.Backend, func(), error) {
	prefix := benchName("wf")
	st, closeStore, err := openWFRedis(ctx, cfg, prefix)
	if err != nil {
		return nil, nil, err
	}
	b, err := amqpbackend.OpenStored(ctx, amqpbackend.Config{URL: cfg.rabbitURL, Prefix: prefix, Store: st})
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	return b, func() {
		b.Close()
		closeStore()
		deleteQueues(cfg.rabbitURL, []string{prefix + ".q.default", prefix + ".dead.default"},
			[]string{prefix + ".work", prefix + ".dead"})
	}, nil
}

// wfRow is one backend's workflow figures.
type wfRow struct {
	name                     string
	plainChord, chord        time.Duration // wall times
	plainChains, chains      time.Duration
	pickP50, pickP99         time.Duration // a plain job enqueued as a job completes: enqueue to start
	cbP50, cbP99, cbMax      time.Duration // callback start minus last member completion
	chordRatio, chainsRatio  float64
	latencyN, pickN, members int
}

// wfRig is one workload's worker process: a fresh backend, a worker with
// the engine installed, the engine running. Every job runs the noop
// handler; onStart hears each start (in the handler), onDone each
// completion (after the worker recorded it).
type wfRig struct {
	c       *queue.Client
	w       *worker.Worker
	onStart func(ctx context.Context, at time.Time)
	onDone  func(rec *job.Record, at time.Time)
	stop    func()
}

func newWFRig(ctx context.Context, cfg config, open opener) (*wfRig, error) {
	b, done, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c := queue.NewClient(b, queue.Config{})
	eng, err := workflow.NewEngine(c, workflow.Config{})
	if err != nil {
		done()
		return nil, err
	}
	r := &wfRig{c: c, onStart: func(context.Context, time.Time) {}, onDone: func(*job.Record, time.Time) {}}
	r.w = worker.New(b, eng.Install(worker.Config{Concurrency: cfg.concurrency[0], Observer: wfObserver{r}}))
	worker.Register(r.w, noop, func(ctx context.Context, _ noopArgs) (queue.None, error) {
		r.onStart(ctx, time.Now())
		return queue.None{}, nil
	})
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = eng.Run(rctx) })
	r.stop = func() {
		_ = r.w.Stop(ctx)
		cancel()
		wg.Wait()
		done()
	}
	return r, nil
}

// start starts the worker; the callbacks must be set before.
func (r *wfRig) start(ctx context.Context) error { return r.w.Start(ctx) }

type wfObserver struct{ r *wfRig }

func (wfObserver) Started(*job.Record) {}
func (o wfObserver) Finished(rec *job.Record, out worker.Outcome, _ time.Duration) {
	if out == worker.Succeeded {
		o.r.onDone(rec, time.Now())
	}
}

// wfTimeout bounds every wait of the workflow rows.
const wfTimeout = 10 * time.Minute

// waitClosed waits for ch, for wfTimeout at most.
func waitClosed(ch <-chan struct{}, what string, progress func() string) error {
	select {
	case <-ch:
		return nil
	case <-time.After(wfTimeout):
		return fmt.Errorf("%s: not finished in %s (%s)", what, wfTimeout, progress())
	}
}

// plainJobs times n plain no-op jobs enqueued in batches while the worker
// runs, from the first enqueue to the last completion.
func plainJobs(ctx context.Context, cfg config, open opener, n int) (time.Duration, error) {
	rig, err := newWFRig(ctx, cfg, open)
	if err != nil {
		return 0, err
	}
	defer rig.stop()
	all := newCountdown(n)
	rig.onDone = func(*job.Record, time.Time) { all.ran1() }
	if err := rig.start(ctx); err != nil {
		return 0, err
	}
	start := time.Now()
	reqs := make([]queue.Request, 0, cfg.batch)
	for i := 0; i < n; i += cfg.batch {
		reqs = reqs[:0]
		for range min(cfg.batch, n-i) {
			reqs = append(reqs, noop.Request(noopArgs{}, nil))
		}
		if _, err := rig.c.EnqueueMany(ctx, reqs...); err != nil {
			return 0, err
		}
	}
	if err := all.wait("plain jobs"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// chordOf is a chord of n no-op members m0... and the callback cb.
func chordOf(n int) workflow.Node {
	members := make([]workflow.Node, n)
	for i := range members {
		members[i] = workflow.Task(fmt.Sprintf("m%d", i), noop, noopArgs{}, nil)
	}
	return workflow.Chord(workflow.Task("cb", noop, noopArgs{}, nil), members...)
}

// timeChord times one chord of n members, from the Enqueue call to the
// callback's completion.
func timeChord(ctx context.Context, cfg config, open opener, n int) (time.Duration, error) {
	rig, err := newWFRig(ctx, cfg, open)
	if err != nil {
		return 0, err
	}
	defer rig.stop()
	var ran atomic.Int64
	cb := make(chan struct{})
	rig.onDone = func(rec *job.Record, _ time.Time) {
		ran.Add(1)
		if rec.Headers[workflow.HeaderStep] == "cb" {
			close(cb)
		}
	}
	if err := rig.start(ctx); err != nil {
		return 0, err
	}
	root := chordOf(n) // built before the clock starts, like the plain requests' loop is cheap
	start := time.Now()
	ref, err := workflow.Enqueue(ctx, rig.c, root, nil)
	if err != nil {
		return 0, err
	}
	if err := waitClosed(cb, "chord", func() string { return fmt.Sprintf("%d of %d jobs done", ran.Load(), n+1) }); err != nil {
		return 0, err
	}
	took := time.Since(start)
	return took, finishedDone(ctx, rig.c, ref.ID)
}

// finishedDone checks that the workflow ended done (the engine records it
// just after the last step's completion).
func finishedDone(ctx context.Context, c *queue.Client, id string) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := workflow.Wait(wctx, c, id); err != nil {
		return fmt.Errorf("workflow %s: %w", id, err)
	}
	return nil
}

// timeChains times chains chains of steps no-op steps, enqueued -batch
// chains an EnqueueMany, until every chain's last step completed.
func timeChains(ctx context.Context, cfg config, open opener, chains, steps int) (time.Duration, error) {
	rig, err := newWFRig(ctx, cfg, open)
	if err != nil {
		return 0, err
	}
	defer rig.stop()
	last := fmt.Sprintf("s%d", steps-1)
	all := newCountdown(chains)
	rig.onDone = func(rec *job.Record, _ time.Time) {
		if rec.Headers[workflow.HeaderStep] == last {
			all.ran1()
		}
	}
	if err := rig.start(ctx); err != nil {
		return 0, err
	}
	roots := make([]workflow.Node, chains)
	for i := range roots {
		nodes := make([]workflow.Node, steps)
		for j := range nodes {
			nodes[j] = workflow.Task(fmt.Sprintf("s%d", j), noop, noopArgs{}, nil)
		}
		roots[i] = workflow.Chain(nodes...)
	}
	start := time.Now()
	for part := range slices.Chunk(roots, cfg.batch) {
		reqs := make([]workflow.Request, len(part))
		for i, root := range part {
			reqs[i] = workflow.Request{Root: root}
		}
		if _, err := workflow.EnqueueMany(ctx, rig.c, reqs...); err != nil {
			return 0, err
		}
	}
	if err := all.wait("chains"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// callbackLatency runs chords of members one after the other and returns,
// for each, its callback's start minus its last member's completion.
func callbackLatency(ctx context.Context, cfg config, open opener, chords, members int) (latencies, error) {
	rig, err := newWFRig(ctx, cfg, open)
	if err != nil {
		return nil, err
	}
	defer rig.stop()
	var (
		mu       sync.Mutex
		lastDone time.Time
		cbStart  time.Time
		started  chan struct{}
	)
	rig.onDone = func(rec *job.Record, at time.Time) {
		if rec.Headers[workflow.HeaderStep] != "cb" {
			mu.Lock()
			if at.After(lastDone) {
				lastDone = at
			}
			mu.Unlock()
		}
	}
	rig.onStart = func(ctx context.Context, at time.Time) {
		if _, step, _ := workflow.Current(ctx); step == "cb" {
			mu.Lock()
			cbStart = at
			close(started)
			mu.Unlock()
		}
	}
	if err := rig.start(ctx); err != nil {
		return nil, err
	}
	var lat latencies
	for i := range chords {
		mu.Lock()
		lastDone, started = time.Time{}, make(chan struct{})
		ch := started
		mu.Unlock()
		ref, err := workflow.Enqueue(ctx, rig.c, chordOf(members), nil)
		if err != nil {
			return nil, err
		}
		if err := waitClosed(ch, "callback latency", func() string { return fmt.Sprintf("chord %d", i) }); err != nil {
			return nil, err
		}
		if err := finishedDone(ctx, rig.c, ref.ID); err != nil {
			return nil, err
		}
		mu.Lock()
		lat = append(lat, cbStart.Sub(lastDone))
		mu.Unlock()
	}
	return lat, nil
}

// pickup is the floor of callbackLatency: n times, a plain job enqueued
// by the completion of another (in the observer, as the engine's advance
// is told), its enqueue-to-start.
func pickup(ctx context.Context, cfg config, open opener, n int) (latencies, error) {
	rig, err := newWFRig(ctx, cfg, open)
	if err != nil {
		return nil, err
	}
	defer rig.stop()
	var (
		mu   sync.Mutex
		lat  latencies
		at   time.Time
		errc = make(chan error, 1)
		all  = make(chan struct{})
	)
	enqueue := func() {
		mu.Lock()
		at = time.Now()
		mu.Unlock()
		if _, err := noop.Enqueue(ctx, rig.c, noopArgs{}, nil); err != nil {
			select {
			case errc <- err:
			default:
			}
		}
	}
	rig.onStart = func(context.Context, time.Time) {
		mu.Lock()
		lat = append(lat, time.Since(at))
		mu.Unlock()
	}
	rig.onDone = func(*job.Record, time.Time) {
		mu.Lock()
		more := len(lat) < n
		mu.Unlock()
		if !more {
			close(all)
			return
		}
		go enqueue() // off the worker's goroutine, as the engine's Run is
	}
	if err := rig.start(ctx); err != nil {
		return nil, err
	}
	go enqueue()
	select {
	case err := <-errc:
		return nil, err
	case <-all:
	case <-time.After(wfTimeout):
		return nil, fmt.Errorf("pickup: %d of %d jobs ran in %s", len(lat), n, wfTimeout)
	}
	mu.Lock()
	defer mu.Unlock()
	return lat[1:], nil // the first one waited for the worker's start
}

// runWFRow runs every workflow workload on one backend.
func runWFRow(ctx context.Context, cfg config, wc wfConfig, t wfTarget) (wfRow, error) {
	r := wfRow{name: t.name, members: wc.members}
	var err error
	if r.plainChord, err = plainJobs(ctx, cfg, t.open, wc.members); err != nil {
		return r, fmt.Errorf("plain jobs: %w", err)
	}
	if r.chord, err = timeChord(ctx, cfg, t.open, wc.members); err != nil {
		return r, fmt.Errorf("chord: %w", err)
	}
	if r.plainChains, err = plainJobs(ctx, cfg, t.open, wc.chains*wc.steps); err != nil {
		return r, fmt.Errorf("plain jobs: %w", err)
	}
	if r.chains, err = timeChains(ctx, cfg, t.open, wc.chains, wc.steps); err != nil {
		return r, fmt.Errorf("chains: %w", err)
	}
	r.chordRatio, r.chainsRatio = float64(r.chord)/float64(r.plainChord), float64(r.chains)/float64(r.plainChains)
	pick, err := pickup(ctx, cfg, t.open, wc.latChords+1)
	if err != nil {
		return r, err
	}
	r.pickP50, r.pickP99, r.pickN = pick.quantile(0.5), pick.quantile(0.99), len(pick)
	lat, err := callbackLatency(ctx, cfg, t.open, wc.latChords, wc.latMembers)
	if err != nil {
		return r, fmt.Errorf("callback latency: %w", err)
	}
	r.cbP50, r.cbP99, r.cbMax, r.latencyN = lat.quantile(0.5), lat.quantile(0.99), lat.quantile(1), len(lat)
	return r, nil
}

// wfName is a workflow row's name as -backends spells it: AMQP's row
// keeps its state in Redis.
func wfName(t wfTarget) string { return strings.TrimSuffix(t.name, "+redis") }

// runWorkflows runs the workflow rows on the backends -backends names
// (default every one whose server answers), cfg.rounds times taking
// turns, and prints their table; with -workflows=off it does nothing.
func runWorkflows(cfg config, only string) {
	if wfFlags.mode == "off" {
		return
	}
	run := pick(wfTargets, only, " workflows", func(t wfTarget) (string, string) { return wfName(t), t.needs(cfg) })
	fmt.Printf("workflow rows: chord of %d, %d chains of %d, callback latency over %d chords of %d; c=%d, %d round(s)\n",
		wfFlags.members, wfFlags.chains, wfFlags.steps, wfFlags.latChords, wfFlags.latMembers, cfg.concurrency[0], cfg.rounds)
	rounds := make([][]wfRow, len(run))
	for round := range cfg.rounds {
		for i, t := range run {
			fmt.Fprintf(os.Stderr, "running %s workflows (round %d of %d)...\n", t.name, round+1, cfg.rounds)
			r, err := runWFRow(context.Background(), cfg, wfFlags, t)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench %s workflows: %v\n", t.name, err)
				pprof.StopCPUProfile()
				os.Exit(1)
			}
			rounds[i] = append(rounds[i], r)
			fmt.Fprintf(os.Stderr, "  %s round %d: chord %.2fx (%s vs %s), chains %.2fx (%s vs %s), callback p99 %s (pickup p99 %s)\n",
				t.name, round+1, r.chordRatio, secs(r.chord), secs(r.plainChord), r.chainsRatio, secs(r.chains), secs(r.plainChains), ms(r.cbP99), ms(r.pickP99))
		}
	}
	var rows []wfRow
	for _, rs := range rounds {
		rows = append(rows, medianWF(rs))
	}
	printWFTable(os.Stdout, rows)
}

// medianWF is a row whose every figure is the median of the rounds' (the
// upper one of an even count), each ratio the median of the rounds'
// ratios; spread is each ratio's lowest and highest.
func medianWF(rs []wfRow) wfRow {
	out := rs[0]
	mid := func(get func(wfRow) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	dur := func(get func(wfRow) time.Duration) time.Duration {
		return time.Duration(mid(func(r wfRow) float64 { return float64(get(r)) }))
	}
	out.plainChord, out.chord = dur(func(r wfRow) time.Duration { return r.plainChord }), dur(func(r wfRow) time.Duration { return r.chord })
	out.plainChains, out.chains = dur(func(r wfRow) time.Duration { return r.plainChains }), dur(func(r wfRow) time.Duration { return r.chains })
	out.chordRatio, out.chainsRatio = mid(func(r wfRow) float64 { return r.chordRatio }), mid(func(r wfRow) float64 { return r.chainsRatio })
	out.pickP50, out.pickP99 = dur(func(r wfRow) time.Duration { return r.pickP50 }), dur(func(r wfRow) time.Duration { return r.pickP99 })
	out.cbP50, out.cbP99, out.cbMax = dur(func(r wfRow) time.Duration { return r.cbP50 }), dur(func(r wfRow) time.Duration { return r.cbP99 }), dur(func(r wfRow) time.Duration { return r.cbMax })
	return out
}

func printWFTable(out io.Writer, rows []wfRow) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\tplain jobs\tchord\tratio\tplain jobs\tchains\tratio\tcallback p50\tp99\tmax\tplain pickup p50\tp99\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2fx\t%s\t%s\t%.2fx\t%s\t%s\t%s\t%s\t%s\t\n", r.name,
			secs(r.plainChord), secs(r.chord), r.chordRatio, secs(r.plainChains), secs(r.chains), r.chainsRatio,
			ms(r.cbP50), ms(r.cbP99), ms(r.cbMax), ms(r.pickP50), ms(r.pickP99))
	}
	tw.Flush()
	fmt.Fprintln(out, "ratios are workflow wall time over plain jobs' (the same number of jobs, the same run); callback latency is its start minus its last member's completion; plain pickup is a job enqueued as another completes, enqueue to start")
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
