package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
)

// benchDB is the Redis database the redis and asynq rows use; it is flushed
// before each workload.
const benchDB = 5

func needRedis(cfg config) string {
	c := redis.NewClient(&redis.Options{Addr: cfg.redisAddr, DB: benchDB})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Sprintf("no Redis at %s (set -redis or CONVEYOR_REDIS_ADDR): %v", cfg.redisAddr, err)
	}
	return ""
}

func flushRedis(ctx context.Context, cfg config) (*redis.Client, error) {
	c := redis.NewClient(&redis.Options{Addr: cfg.redisAddr, DB: benchDB, PoolSize: 64})
	if err := c.FlushDB(ctx).Err(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func openRedis(ctx context.Context, cfg config) (backends.Backend, func(), error) {
	c, err := flushRedis(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	b, err := redisbackend.New(ctx, redisbackend.Config{Client: c, Prefix: "bench"})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return b, func() { b.Close(); c.Close() }, nil
}

// The asynq row: the same workloads through asynq's public API on the same
// Redis. Its server polls empty queues every TaskCheckInterval (default
// 1s, which would dominate its latency); we give it 10ms, so its latency
// figures are not a straw man.
const asynqCheck = 10 * time.Millisecond

func runAsynq(ctx context.Context, cfg config) (row, error) {
	r := row{name: "asynq"}
	opt := asynq.RedisClientOpt{Addr: cfg.redisAddr, DB: benchDB, PoolSize: 64}
	payload, _ := json.Marshal(noopArgs{})
	fresh := func() (*asynq.Client, error) {
		c, err := flushRedis(ctx, cfg)
		if err != nil {
			return nil, err
		}
		c.Close()
		return asynq.NewClient(opt), nil
	}

	client, err := fresh()
	if err != nil {
		return r, err
	}
	start := time.Now()
	for range cfg.single {
		if _, err := client.EnqueueContext(ctx, asynq.NewTask(noop.Name(), payload)); err != nil {
			client.Close()
			return r, err
		}
	}
	r.single = float64(cfg.single) / time.Since(start).Seconds()
	client.Close()

	// burn enqueues n tasks with args, then times one server draining them.
	burn := func(n, c int, args noopArgs, enqueueRate *float64) (float64, error) {
		client, err := fresh()
		if err != nil {
			return 0, err
		}
		p, _ := json.Marshal(args)
		start := time.Now()
		err = asynqParallelEnqueue(ctx, client, n, p)
		if enqueueRate != nil {
			*enqueueRate = float64(n) / time.Since(start).Seconds()
		}
		client.Close()
		if err != nil {
			return 0, err
		}
		done := newCountdown(n)
		start = time.Now()
		srv, err := asynqServe(opt, c, func(_ context.Context, t *asynq.Task) error {
			var a noopArgs
			if err := json.Unmarshal(t.Payload(), &a); err != nil {
				return err
			}
			a.work()
			done.ran1()
			return nil
		})
		if err != nil {
			return 0, err
		}
		defer srv.Shutdown()
		if err := done.wait("asynq burn-down"); err != nil {
			return 0, err
		}
		return float64(n) / time.Since(start).Seconds(), nil
	}
	if err := runDrains(cfg, &r, burn); err != nil {
		return r, err
	}

	if client, err = fresh(); err != nil {
		return r, err
	}
	defer client.Close()
	rec := newRecorder(int(cfg.duration.Seconds() * float64(cfg.rate)))
	srv, err := asynqServe(opt, cfg.concurrency[0], func(_ context.Context, t *asynq.Task) error {
		var a noopArgs
		if err := json.Unmarshal(t.Payload(), &a); err != nil {
			return err
		}
		a.work()
		rec.record(a.At)
		return nil
	})
	if err != nil {
		return r, err
	}
	defer srv.Shutdown()
	err = r.measureLatency(rec, cfg.rate, func() error {
		p, _ := json.Marshal(noopArgs{At: time.Now().UnixNano()})
		_, err := client.EnqueueContext(ctx, asynq.NewTask(noop.Name(), p))
		return err
	})
	return r, err
}

func asynqParallelEnqueue(ctx context.Context, client *asynq.Client, n int, payload []byte) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := client.EnqueueContext(ctx, asynq.NewTask(noop.Name(), payload)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func asynqServe(opt asynq.RedisClientOpt, concurrency int, h asynq.HandlerFunc) (*asynq.Server, error) {
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency:       concurrency,
		Queues:            map[string]int{"default": 1},
		TaskCheckInterval: asynqCheck,
		LogLevel:          asynq.FatalLevel,
		Logger:            quietLogger{log.New(io.Discard, "", 0)},
	})
	mux := asynq.NewServeMux()
	mux.Handle(noop.Name(), h)
	if err := srv.Start(mux); err != nil {
		return nil, err
	}
	return srv, nil
}

// quietLogger keeps asynq's logs out of the table.
type quietLogger struct{ *log.Logger }

func (l quietLogger) Debug(args ...any) {}
func (l quietLogger) Info(args ...any)  {}
func (l quietLogger) Warn(args ...any)  {}
func (l quietLogger) Error(args ...any) {}
func (l quietLogger) Fatal(args ...any) { l.Logger.Fatal(args...) }

// quietRedis keeps go-redis's connection-pool messages out of the table.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
