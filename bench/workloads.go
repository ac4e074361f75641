package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// noopArgs carry the enqueue time so the handler can measure pickup latency.
type noopArgs struct {
	At int64 `json:"at"`
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

func enqueueBatch(ctx context.Context, b backends.Backend, n, batch int) (float64, error) {
	c := queue.NewClient(b, queue.Config{})
	start := time.Now()
	reqs := make([]queue.Request, 0, batch)
	for i := 0; i < n; i += batch {
		reqs = reqs[:0]
		for j := i; j < min(i+batch, n); j++ {
			reqs = append(reqs, noop.Request(noopArgs{}, nil))
		}
		if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// burnDown drains n enqueued no-op jobs with one worker.
func burnDown(ctx context.Context, b backends.Backend, n, concurrency int) (float64, error) {
	var count atomic.Int64
	all := make(chan struct{})
	w := worker.New(b, worker.Config{Concurrency: concurrency})
	worker.Register(w, noop, func(context.Context, noopArgs) (queue.None, error) {
		if count.Add(1) == int64(n) {
			close(all)
		}
		return queue.None{}, nil
	})
	start := time.Now()
	if err := w.Start(ctx); err != nil {
		return 0, err
	}
	timeout := time.After(10 * time.Minute)
	select {
	case <-all:
	case <-timeout:
		return 0, fmt.Errorf("burn-down: %d of %d jobs ran in 10 minutes", count.Load(), n)
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
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

// recorder collects enqueue-to-start times until it has total of them.
type recorder struct {
	mu    sync.Mutex
	lat   latencies
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
	if len(r.lat) == r.total {
		close(r.all)
	}
}

func (r *recorder) wait() (latencies, error) {
	select {
	case <-r.all:
	case <-time.After(time.Minute):
		return nil, errors.New("latency run: jobs still unstarted a minute after the last enqueue")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lat, nil
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
func steadyLatency(ctx context.Context, b backends.Backend, perSec int, d time.Duration, concurrency int) (latencies, error) {
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
	return rec.wait()
}
