package main

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// The river rows: the same workloads through River's public API, on
// PostgreSQL (riverpgxv5) and on SQLite (riversqlite). Its fetch cooldown
// (100ms by default, a floor on the time between fetches) is set to 5ms so
// its latency figures are not a straw man; everything else is River's
// default.
const riverFetchCooldown = 5 * time.Millisecond

type riverNoop noopArgs

func (riverNoop) Kind() string { return noop.Name() }

type riverNoopWorker struct {
	river.WorkerDefaults[riverNoop]
	fn func(at int64)
}

func (w *riverNoopWorker) Work(_ context.Context, j *river.Job[riverNoop]) error {
	noopArgs(j.Args).work()
	w.fn(j.Args.At)
	return nil
}

// riverConfig is the client configuration both river rows use: with fn,
// a worker at concurrency running fn for each job; without, insert only.
func riverConfig(schema string, concurrency int, fn func(int64)) *river.Config {
	rc := &river.Config{Schema: schema, Logger: quietSlog(), FetchCooldown: riverFetchCooldown}
	if fn != nil {
		workers := river.NewWorkers()
		river.AddWorker(workers, &riverNoopWorker{fn: fn})
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: concurrency}}
	}
	return rc
}

// riverFresh opens a River client on an empty, migrated database; close
// releases it.
type riverFresh[TTx any] func(concurrency int, fn func(at int64)) (client *river.Client[TTx], close func(), err error)

// runRiverRow runs every workload through River clients that fresh opens,
// whatever the driver.
func runRiverRow[TTx any](ctx context.Context, cfg config, name string, fresh riverFresh[TTx]) (row, error) {
	r := row{name: name}
	client, closeDB, err := fresh(0, nil)
	if err != nil {
		return r, err
	}
	start := time.Now()
	for range cfg.single {
		if _, err := client.Insert(ctx, riverNoop{}, nil); err != nil {
			closeDB()
			return r, err
		}
	}
	r.single = float64(cfg.single) / time.Since(start).Seconds()
	closeDB()

	// burn inserts n jobs with args, then times one client draining them.
	burn := func(n, c int, args noopArgs, insertRate *float64) (float64, error) {
		done := newCountdown(n)
		client, closeDB, err := fresh(c, func(int64) { done.ran1() })
		if err != nil {
			return 0, err
		}
		defer closeDB()
		start := time.Now()
		for j := 0; j < n; j += cfg.batch {
			params := make([]river.InsertManyParams, 0, cfg.batch)
			for range min(cfg.batch, n-j) {
				params = append(params, river.InsertManyParams{Args: riverNoop(args)})
			}
			if _, err := client.InsertManyFast(ctx, params); err != nil {
				return 0, err
			}
		}
		if insertRate != nil {
			*insertRate = float64(n) / time.Since(start).Seconds()
		}
		start = time.Now()
		if err := client.Start(ctx); err != nil {
			return 0, err
		}
		defer client.Stop(ctx)
		if err := done.wait(name + " burn-down"); err != nil {
			return 0, err
		}
		return float64(n) / time.Since(start).Seconds(), nil
	}
	if err := runDrains(cfg, &r, burn); err != nil {
		return r, err
	}

	rec := newRecorder(int(cfg.duration.Seconds() * float64(cfg.rate)))
	client, closeDB, err = fresh(cfg.concurrency[0], rec.record)
	if err != nil {
		return r, err
	}
	defer closeDB()
	if err := client.Start(ctx); err != nil {
		return r, err
	}
	defer client.Stop(ctx)
	err = r.measureLatency(rec, cfg.rate, func() error {
		_, err := client.Insert(ctx, riverNoop{At: time.Now().UnixNano()}, nil)
		return err
	})
	return r, err
}
