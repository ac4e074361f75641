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
// starts empty and does not pay for the previous one's dirty pages; tune,
// if given, adjusts the pool's configuration first (a query counter).
func freshSchema(ctx context.Context, cfg config, schema string, tune ...func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.postgresURL)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = 20
	for _, f := range tune {
		f(pc)
	}
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

// runRiver is the river row: River on the same PostgreSQL, in a schema of
// its own.
func runRiver(ctx context.Context, cfg config) (row, error) {
	return runRiverRow(ctx, cfg, "river", func(concurrency int, fn func(int64)) (*river.Client[pgx.Tx], func(), error) {
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
		client, err := river.NewClient(riverpgxv5.New(pool), riverConfig(riverSchema, concurrency, fn))
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		return client, pool.Close, nil
	})
}

func quietSlog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
