package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
)

// The postgres and river rows each use a schema of their own in the same
// database, dropped and rebuilt before each workload.
const (
	conveyorSchema = "bench_conveyor"
	riverSchema    = "bench_river"
)

func needPostgres(cfg config) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, cfg.postgresURL)
	if err != nil {
		return fmt.Sprintf("no PostgreSQL at %q (set -postgres or CONVEYOR_POSTGRES_URL): %v", cfg.postgresURL, err)
	}
	conn.Close(ctx)
	return ""
}

// freshSchema connects, drops schema and checkpoints, so each workload
// starts empty and does not pay for the previous one's dirty pages.
func freshSchema(ctx context.Context, cfg config, schema string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.postgresURL)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE; CREATE SCHEMA "+schema); err != nil {
		pool.Close()
		return nil, err
	}
	_, _ = pool.Exec(ctx, "CHECKPOINT") // needs pg_checkpoint rights; best effort
	return pool, nil
}

func openPostgres(ctx context.Context, cfg config) (backends.Backend, func(), error) {
	pool, err := freshSchema(ctx, cfg, conveyorSchema)
	if err != nil {
		return nil, nil, err
	}
	b, err := pgbackend.New(ctx, pgbackend.Config{Pool: pool, Schema: conveyorSchema, Migrate: true})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return b, func() { b.Close(); pool.Close() }, nil
}

// The river row: the same workloads through River's public API (riverpgxv5)
// on the same server. Its fetch cooldown (100ms by default, a floor on the
// time between fetches) is set to 5ms so its latency figures are not a
// straw man; everything else is River's default.
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

func runRiver(ctx context.Context, cfg config) (row, error) {
	r := row{name: "river"}
	fresh := func(concurrency int, fn func(int64)) (*river.Client[pgx.Tx], *pgxpool.Pool, error) {
		pool, err := freshSchema(ctx, cfg, riverSchema)
		if err != nil {
			return nil, nil, err
		}
		migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: riverSchema, Logger: quietSlog()})
		if err == nil {
			_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
		}
		if err != nil {
			pool.Close()
			return nil, nil, fmt.Errorf("river migrate: %w", err)
		}
		rc := &river.Config{Schema: riverSchema, Logger: quietSlog(), FetchCooldown: 5 * time.Millisecond}
		if fn != nil {
			workers := river.NewWorkers()
			river.AddWorker(workers, &riverNoopWorker{fn: fn})
			rc.Workers = workers
			rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: concurrency}}
		}
		client, err := river.NewClient(riverpgxv5.New(pool), rc)
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		return client, pool, nil
	}

	client, pool, err := fresh(0, nil)
	if err != nil {
		return r, err
	}
	start := time.Now()
	for range cfg.single {
		if _, err := client.Insert(ctx, riverNoop{}, nil); err != nil {
			pool.Close()
			return r, err
		}
	}
	r.single = float64(cfg.single) / time.Since(start).Seconds()
	pool.Close()

	// burn inserts n jobs with args, then times one client draining them.
	burn := func(n, c int, args noopArgs, insertRate *float64) (float64, error) {
		done := newCountdown(n)
		client, pool, err := fresh(c, func(int64) { done.ran1() })
		if err != nil {
			return 0, err
		}
		defer pool.Close()
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
		if err := done.wait("river burn-down"); err != nil {
			return 0, err
		}
		return float64(n) / time.Since(start).Seconds(), nil
	}
	if err := runDrains(cfg, &r, burn); err != nil {
		return r, err
	}

	rec := newRecorder(int(cfg.duration.Seconds() * float64(cfg.rate)))
	client, pool, err = fresh(cfg.concurrency[0], rec.record)
	if err != nil {
		return r, err
	}
	defer pool.Close()
	if err := client.Start(ctx); err != nil {
		return r, err
	}
	defer client.Stop(ctx)
	err = atRate(cfg.rate, rec.total, func() error {
		_, err := client.Insert(ctx, riverNoop{At: time.Now().UnixNano()}, nil)
		return err
	})
	if err != nil {
		return r, err
	}
	if err := rec.wait(); err != nil {
		return r, err
	}
	r.setLatency(rec)
	return r, nil
}

func quietSlog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
