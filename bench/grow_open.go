package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
)

// growOpts are what some -grow workloads set on a fresh backend beyond
// what its row's open does.
type growOpts struct {
	clock        backends.Clock // nil: the system clock
	janitorEvery time.Duration  // 0: the backend's default; negative: off
	counter      *atomic.Int64  // counts the client's round trips
}

// growOpen opens a fresh, empty backend of the row t with o: Redis,
// PostgreSQL and SQLite here, any other row through its own open (with o
// ignored). counted says whether o.counter counts this backend's round
// trips.
func growOpen(ctx context.Context, cfg config, t target, o growOpts) (b backends.Backend, done func(), counted bool, err error) {
	switch t.name {
	case "redis":
		c, err := flushRedis(ctx, cfg)
		if err != nil {
			return nil, nil, false, err
		}
		if o.counter != nil {
			c.AddHook(tripHook{o.counter})
		}
		rb, err := redisbackend.New(ctx, redisbackend.Config{Client: c, Prefix: "bench", Clock: o.clock, JanitorEvery: o.janitorEvery})
		if err != nil {
			c.Close()
			return nil, nil, false, err
		}
		return rb, func() { rb.Close(); c.Close() }, o.counter != nil, nil
	case "postgres":
		pool, err := freshSchema(ctx, cfg, conveyorSchema, func(pc *pgxpool.Config) {
			if o.counter != nil {
				pc.ConnConfig.Tracer = tripTracer{o.counter}
			}
		})
		if err != nil {
			return nil, nil, false, err
		}
		pb, err := pgbackend.New(ctx, pgbackend.Config{Pool: pool, Schema: conveyorSchema, Migrate: true, Clock: o.clock, JanitorEvery: o.janitorEvery})
		if err != nil {
			pool.Close()
			return nil, nil, false, err
		}
		return pb, func() { pb.Close(); pool.Close() }, o.counter != nil, nil
	case "sqlite":
		dir, err := os.MkdirTemp("", "conveyor-bench-")
		if err != nil {
			return nil, nil, false, err
		}
		sb, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(dir, "bench.db"), Clock: o.clock, JanitorEvery: o.janitorEvery})
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, false, err
		}
		return sb, func() { sb.Close(); os.RemoveAll(dir) }, false, nil
	}
	b, done, err = t.open(ctx, cfg)
	return b, done, false, err
}

// tripHook counts a go-redis client's round trips: a command, or a
// pipeline (a transaction too) as one.
type tripHook struct{ n *atomic.Int64 }

func (h tripHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h tripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h tripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// tripTracer counts a pgx pool's round trips: a query or exec, or a batch
// as one.
type tripTracer struct{ n *atomic.Int64 }

func (t tripTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	t.n.Add(1)
	return ctx
}

func (tripTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (t tripTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	t.n.Add(1)
	return ctx
}

func (tripTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (tripTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// shiftClock is the system clock moved back by a settable offset: the
// retention workload finishes its retained jobs two days ago, then moves
// the clock back to now so that the janitor finds them past retention.
type shiftClock struct{ back atomic.Int64 }

func (c *shiftClock) Now() time.Time { return time.Now().Add(-time.Duration(c.back.Load())) }
