package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// peerConfig is cfg for a whole-row run (a peer's, through target.run)
// that measures only the burn-down of n jobs and the 1 MB workload's
// count of big ones: the single enqueue and the latency run shrink to a
// handful of jobs.
func peerConfig(cfg config, n, bigJobs int) config {
	cfg.n, cfg.single, cfg.sleepJobs, cfg.bigJobs, cfg.soak = n, 1, 0, bigJobs, 0
	cfg.concurrency = cfg.concurrency[:1]
	cfg.rate, cfg.duration = 100, 100*time.Millisecond
	return cfg
}

func sizeLabel(n int, unit string) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM%s", n/1_000_000, unit)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk%s", n/1000, unit)
	}
	return fmt.Sprintf("%d%s", n, unit)
}

// Reserve timing at a deep backlog: reserveCalls calls of reserveBatch
// jobs each, leased for an hour so that the burn-down after them does not
// see them again.
const reserveCalls, reserveBatch = 20, 50

// growBacklog enqueues each depth of jobs and drains the whole backlog
// with one worker, every row the same way (a peer through its own run);
// a Conveyor row also times Reserve calls at full depth, the pickup's
// server side.
func growBacklog(ctx context.Context, cfg config, g *growConfig, run []target) ([]*growResult, error) {
	var labels []string
	for _, n := range g.backlog {
		labels = append(labels, sizeLabel(n, " waiting"))
	}
	c := cfg.concurrency[0]
	res := newGrowResult("backlog", labels,
		fmt.Sprintf("burn-down of the whole backlog, jobs/s (one worker, c=%d)", c),
		fmt.Sprintf("batch enqueue of the backlog, jobs/s (batches of %d)", cfg.batch),
		fmt.Sprintf("reserve of %d jobs at full depth, ms (slowest of %d calls)", reserveBatch, reserveCalls))
	for round := range cfg.rounds {
		for i, n := range g.backlog {
			for _, t := range run {
				if t.drainOnly {
					continue
				}
				if t.open == nil {
					r, err := t.run(ctx, peerConfig(cfg, n, 0))
					if err != nil {
						return nil, fmt.Errorf("%s at %d: %w", t.name, n, err)
					}
					res.add(0, t.name, t.vs, i, r.burn[0])
					res.add(1, t.name, t.vs, i, r.batch)
					progress("backlog", t.name, labels[i], round, "burn-down/s", r.burn[0])
					continue
				}
				burn, enq, slowest, err := conveyorBacklog(ctx, cfg, t, n, c)
				if err != nil {
					return nil, fmt.Errorf("%s at %d: %w", t.name, n, err)
				}
				res.add(0, t.name, t.vs, i, burn)
				res.add(1, t.name, t.vs, i, enq)
				res.add(2, t.name, t.vs, i, float64(slowest)/float64(time.Millisecond))
				progress("backlog", t.name, labels[i], round, "burn-down/s", burn)
			}
		}
	}
	return []*growResult{res}, nil
}

func conveyorBacklog(ctx context.Context, cfg config, t target, n, c int) (burn, enq float64, slowest time.Duration, err error) {
	b, done, err := t.open(ctx, cfg)
	if err != nil {
		return 0, 0, 0, err
	}
	defer done()
	if enq, err = enqueueBatch(ctx, b, n, cfg.batch, noopArgs{}); err != nil {
		return 0, 0, 0, err
	}
	reserved := 0
	for range reserveCalls {
		if n-reserved < 2*reserveBatch {
			break
		}
		start := time.Now()
		recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: queue.DefaultQueue, Limit: reserveBatch, Lease: time.Hour, Worker: "bench-reserve"})
		if err != nil {
			return 0, 0, 0, err
		}
		slowest = max(slowest, time.Since(start))
		reserved += len(recs)
	}
	burn, err = burnDown(ctx, b, n-reserved, c)
	return burn, enq, slowest, err
}

// growPayloads drains jobs of each payload size, every row through its own
// run's big-payload workload with the payload resized.
func growPayloads(ctx context.Context, cfg config, g *growConfig, run []target) ([]*growResult, error) {
	var labels []string
	for _, s := range g.payloads {
		labels = append(labels, sizeLabel(s/1024, " KB"))
	}
	res := newGrowResult("payloads", labels,
		fmt.Sprintf("burn-down, jobs/s (one worker, c=%d, enqueued ten to a batch)", cfg.concurrency[0]),
		"burn-down, MB/s of payload")
	saved := bigPad
	defer func() { bigPad = saved }()
	for round := range cfg.rounds {
		for i, size := range g.payloads {
			bigPad = strings.Repeat("x", max(size-100, 1))
			count := min(max(g.payloadMB<<20/size, 20), 5000)
			for _, t := range run {
				if t.drainOnly {
					continue
				}
				r, err := t.run(ctx, peerConfig(cfg, 10, count))
				if err != nil {
					return nil, fmt.Errorf("%s at %d bytes: %w", t.name, size, err)
				}
				res.add(0, t.name, t.vs, i, r.big)
				res.add(1, t.name, t.vs, i, r.big*float64(size)/1e6)
				progress("payloads", t.name, labels[i], round, "jobs/s", r.big)
			}
		}
	}
	return []*growResult{res}, nil
}

// growQueues spreads queueJobs evenly over each count of queues and
// drains them with one worker serving all of them, weighted 1, 2 and 3 in
// turn; on Redis and PostgreSQL it counts the client's round trips.
func growQueues(ctx context.Context, cfg config, g *growConfig, run []target) ([]*growResult, error) {
	var labels []string
	for _, q := range g.queues {
		labels = append(labels, sizeLabel(q, " queues"))
	}
	c := cfg.concurrency[0]
	res := newGrowResult("queues", labels,
		fmt.Sprintf("burn-down of %d jobs, jobs/s (one worker, c=%d)", g.queueJobs, c),
		"backend round trips per job during the burn-down (Redis commands and pipelines, PostgreSQL statements and batches)")
	for round := range cfg.rounds {
		for i, nq := range g.queues {
			for _, t := range run {
				if t.open == nil {
					continue
				}
				rate, trips, err := queuesRun(ctx, cfg, t, nq, g.queueJobs, c)
				if err != nil {
					return nil, fmt.Errorf("%s with %d queues: %w", t.name, nq, err)
				}
				res.add(0, t.name, "", i, rate)
				if trips >= 0 {
					res.add(1, t.name, "", i, trips)
				}
				progress("queues", t.name, labels[i], round, "jobs/s", rate)
			}
		}
	}
	return []*growResult{res}, nil
}

func queuesRun(ctx context.Context, cfg config, t target, nq, jobs, c int) (rate, trips float64, err error) {
	var counter atomic.Int64
	b, done, counted, err := growOpen(ctx, cfg, t, growOpts{counter: &counter})
	if err != nil {
		return 0, 0, err
	}
	defer done()
	client := queue.NewClient(b, queue.Config{})
	per := jobs / nq
	wc := worker.Config{Concurrency: c}
	for q := range nq {
		name := fmt.Sprintf("q%04d", q)
		wc.Queues = append(wc.Queues, worker.QueueConfig{Name: name, Weight: 1 + q%3})
		for sent := 0; sent < per; sent += cfg.batch {
			reqs := make([]queue.Request, 0, cfg.batch)
			for range min(cfg.batch, per-sent) {
				reqs = append(reqs, noop.Request(noopArgs{}, &queue.EnqueueOptions{Queue: name}))
			}
			if _, err := client.EnqueueMany(ctx, reqs...); err != nil {
				return 0, 0, err
			}
		}
	}
	counter.Store(0)
	if rate, err = burnDownWith(ctx, b, per*nq, wc); err != nil {
		return 0, 0, err
	}
	if !counted {
		return rate, -1, nil
	}
	return rate, float64(counter.Load()) / float64(per*nq), nil
}
