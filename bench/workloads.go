package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// noopArgs carry the enqueue time so the handler can measure pickup
// latency; SleepMS makes the job take that long and Pad makes its payload
// that big, for the sleep and big-payload workloads.
type noopArgs struct {
	At      int64  `json:"at"`
	SleepMS int    `json:"sleep_ms,omitempty"`
	Pad     string `json:"pad,omitempty"`
}

// work is what every row's handler does with the arguments.
func (a noopArgs) work() {
	if a.SleepMS > 0 {
		time.Sleep(time.Duration(a.SleepMS) * time.Millisecond)
	}
}

var noop = queue.NewTask[noopArgs, queue.None]("bench.noop", queue.TaskOptions{})

func enqueueSingle(ctx context.Context, b backends.Backend, n int) (float64, error) {
	c := queue.NewClient(b, queue.Config{})
	start := time.Now()
	for range n {
		if _, err := noop.Enqueue(ctx, c, noopArgs{}, nil); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func enqueueBatch(ctx context.Context, b backends.Backend, n, batch int, args noopArgs) (float64, error) {
	c := queue.NewClient(b, queue.Config{})
	start := time.Now()
	reqs := make([]queue.Request, 0, batch)
	for i := 0; i < n; i += batch {
		reqs = reqs[:0]
		for j := i; j < min(i+batch, n); j++ {
			reqs = append(reqs, noop.Request(args, nil))
		}
		if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// countdown closes all once n jobs have run.
type countdown struct {
	n, ran atomic.Int64
	all    chan struct{}
}

func newCountdown(n int) *countdown {
	c := &countdown{all: make(chan struct{})}
	c.n.Store(int64(n))
	return c
}

// ran1 notes one job run.
func (c *countdown) ran1() {
	if c.ran.Add(1) == c.n.Load() {
		close(c.all)
	}
}

// wait waits for all n jobs, for 10 minutes at most.
func (c *countdown) wait(what string) error {
	select {
	case <-c.all:
		return nil
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("%s: %d of %d jobs ran in 10 minutes", what, c.ran.Load(), c.n.Load())
	}
}

// drain is one row's way to enqueue n jobs with args and time one worker
// process draining them at concurrency c; a non-nil enqueueRate gets the
// enqueue rate.
type drain func(n, c int, args noopArgs, enqueueRate *float64) (float64, error)

// runDrains fills a row's burn-down, 10ms-job and 1 MB-payload figures the
// same way for every row.
func runDrains(cfg config, r *row, d drain) error {
	for i, c := range cfg.concurrency {
		var enq *float64
		if i == 0 {
			enq = &r.batch
		}
		rate, err := d(cfg.n, c, noopArgs{}, enq)
		if err != nil {
			return err
		}
		r.burn = append(r.burn, rate)
	}
	var err error
	if cfg.sleepJobs > 0 {
		if r.sleep, err = d(cfg.sleepJobs, 200, noopArgs{SleepMS: 10}, nil); err != nil {
			return err
		}
	}
	if cfg.bigJobs > 0 {
		if r.big, err = d(cfg.bigJobs, cfg.concurrency[0], noopArgs{Pad: bigPad}, nil); err != nil {
			return err
		}
	}
	return nil
}

// burnDown drains n enqueued jobs with one worker.
func burnDown(ctx context.Context, b backends.Backend, n, concurrency int) (float64, error) {
	return burnDownWith(ctx, b, n, worker.Config{Concurrency: concurrency})
}

// burnDownWith drains n enqueued jobs with one worker configured by wc.
func burnDownWith(ctx context.Context, b backends.Backend, n int, wc worker.Config) (float64, error) {
	done := newCountdown(n)
	w := worker.New(b, wc)
	worker.Register(w, noop, func(_ context.Context, a noopArgs) (queue.None, error) {
		a.work()
		done.ran1()
		return queue.None{}, nil
	})
	start := time.Now()
	if err := w.Start(ctx); err != nil {
		return 0, err
	}
	if err := done.wait("burn-down"); err != nil {
		return 0, err
	}
	// The handler has returned for all; wait for the last completions too.
	if err := w.Stop(ctx); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

type latencies []time.Duration

func (l latencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	// Nearest rank: the p99 of 100 samples is the 99th, not the largest.
	return s[min(max(int(math.Ceil(q*float64(len(s))))-1, 0), len(s)-1)]
}

// recorder collects enqueue-to-start times until it has total of them,
// with when each job was enqueued, for the latency-over-time plot.
type recorder struct {
	mu    sync.Mutex
	lat   latencies
	at    []int64 // enqueue times, Unix ns, in the order of lat
	total int
	all   chan struct{}
}

func newRecorder(total int) *recorder {
	return &recorder{lat: make(latencies, 0, total), total: total, all: make(chan struct{})}
}

// record notes a job enqueued at enqueuedAt (Unix ns) starting now.
func (r *recorder) record(enqueuedAt int64) {
	took := time.Duration(time.Now().UnixNano() - enqueuedAt)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat = append(r.lat, took)
	r.at = append(r.at, enqueuedAt)
	if len(r.lat) == r.total {
		close(r.all)
	}
}

func (r *recorder) wait() error {
	select {
	case <-r.all:
		return nil
	case <-time.After(time.Minute):
		return errors.New("latency run: jobs still unstarted a minute after the last enqueue")
	}
}

// series returns the latencies as points in time since the first enqueue.
func (r *recorder) series() []point {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.at) == 0 {
		return nil
	}
	first := slices.Min(r.at)
	out := make([]point, len(r.at))
	for i := range r.at {
		out[i] = point{at: time.Duration(r.at[i] - first), latency: r.lat[i]}
	}
	return out
}

// point is one job of the latency run.
type point struct {
	at, latency time.Duration
}

// measureLatency calls enqueue rec.total times at perSec a second, waits
// for every job to start and fills r's latency figures.
func (r *row) measureLatency(rec *recorder, perSec int, enqueue func() error) error {
	if err := atRate(perSec, rec.total, enqueue); err != nil {
		return err
	}
	if err := rec.wait(); err != nil {
		return err
	}
	r.setLatency(rec)
	return nil
}

// atRate calls enqueue total times, spaced evenly at perSec per second.
func atRate(perSec, total int, enqueue func() error) error {
	interval := time.Second / time.Duration(perSec)
	start := time.Now()
	for i := range total {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		if err := enqueue(); err != nil {
			return err
		}
	}
	return nil
}

// steadyLatency enqueues at a fixed rate, one job per call, while a worker
// runs, and records each job's enqueue-to-start time.
func steadyLatency(ctx context.Context, b backends.Backend, perSec int, d time.Duration, concurrency int) (*recorder, error) {
	rec := newRecorder(int(d.Seconds() * float64(perSec)))
	w := worker.New(b, worker.Config{Concurrency: concurrency})
	worker.Register(w, noop, func(_ context.Context, a noopArgs) (queue.None, error) {
		rec.record(a.At)
		return queue.None{}, nil
	})
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	defer w.Stop(ctx)
	c := queue.NewClient(b, queue.Config{})
	err := atRate(perSec, rec.total, func() error {
		_, err := noop.Enqueue(ctx, c, noopArgs{At: time.Now().UnixNano()}, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rec, rec.wait()
}

// soak pushes n no-op jobs through one worker, keeping at most 20,000
// waiting, and returns the process's resident memory after the first tenth
// and at the end: a leak shows as growth between the two.
func soak(ctx context.Context, b backends.Backend, n, concurrency int) (start, end int64, err error) {
	var count atomic.Int64
	w := worker.New(b, worker.Config{Concurrency: concurrency})
	worker.Register(w, noop, func(context.Context, noopArgs) (queue.None, error) {
		count.Add(1)
		return queue.None{}, nil
	})
	if err := w.Start(ctx); err != nil {
		return 0, 0, err
	}
	defer w.Stop(ctx)
	c := queue.NewClient(b, queue.Config{})
	reqs := make([]queue.Request, 0, 1000)
	for sent := 0; sent < n; sent += len(reqs) {
		for int64(sent)-count.Load() > 20_000 {
			time.Sleep(5 * time.Millisecond)
		}
		if start == 0 && sent >= n/10 {
			start = rss()
		}
		reqs = reqs[:0]
		for range min(1000, n-sent) {
			reqs = append(reqs, noop.Request(noopArgs{}, nil))
		}
		if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
			return 0, 0, err
		}
	}
	for count.Load() < int64(n) {
		time.Sleep(10 * time.Millisecond)
	}
	return start, rss(), nil
}

// rss is this process's resident set size in bytes (Linux), or 0, after
// returning freed memory to the OS, so it counts what is live.
func rss() int64 {
	debug.FreeOSMemory()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
