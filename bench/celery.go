package main

// The Celery rows: a Python Celery client sends no-op tasks over a Redis
// broker, run by an unmodified Celery worker (prefork, its default
// concurrency: one process per CPU) in row celery-py, and by a Conveyor
// worker on interop/celery in row celery-go, compared with it. Each row
// fills the queue with celeryJobs tasks and then starts its worker, whose
// drain rate is the row's burn-down figure (first start to last start, so
// Celery's boot is not counted); then, with the worker running, the client
// sends at celeryRate a second and the enqueue-to-start times are the
// row's latency. Both workers store every result in Redis, where the bench
// reads when each task started.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/interop/celery"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

const (
	celeryJobs   = 10_000
	celeryStream = 1_000 // latency: this many at celeryRate, below both workers' drain rates
	celeryRate   = 100
	celeryDB     = 6 // flushed before each row
	celeryQueue  = "bench-celery"
)

func init() {
	targets = append(targets,
		target{name: "celery-py", drainOnly: true, needs: needCelery, run: func(ctx context.Context, cfg config) (row, error) {
			return runCelery(ctx, cfg, "celery-py", startPythonWorker)
		}},
		target{name: "celery-go", vs: "celery-py", drainOnly: true, needs: needCelery, run: func(ctx context.Context, cfg config) (row, error) {
			return runCelery(ctx, cfg, "celery-go", startGoWorker)
		}},
	)
}

// celeryDir holds the Python side: the Celery app and the bench client,
// found from the repository's top (go run ./bench) or from bench/ (its
// tests), unless CONVEYOR_CELERY_DIR says where.
func celeryDir() string {
	if dir := os.Getenv("CONVEYOR_CELERY_DIR"); dir != "" {
		return dir
	}
	for _, dir := range []string{filepath.Join("interop", "celery", "testdata"), filepath.Join("..", "interop", "celery", "testdata")} {
		if abs, err := filepath.Abs(dir); err == nil {
			if _, err := os.Stat(filepath.Join(abs, "bench.py")); err == nil {
				return abs
			}
		}
	}
	return filepath.Join("interop", "celery", "testdata")
}

func pythonBin() string { return envOr("CONVEYOR_PYTHON", "/usr/bin/python3") }

func needCelery(cfg config) string {
	if why := needRedis(cfg); why != "" {
		return why
	}
	if out, err := exec.Command(pythonBin(), "-c", "import celery").CombinedOutput(); err != nil {
		return fmt.Sprintf("%s cannot import celery (Debian's python3-celery; set CONVEYOR_PYTHON): %v: %s", pythonBin(), err, out)
	}
	if _, err := os.Stat(filepath.Join(celeryDir(), "bench.py")); err != nil {
		return fmt.Sprintf("no Celery bench client (run from the repository's top, or set CONVEYOR_CELERY_DIR): %v", err)
	}
	return ""
}

func celeryEnv(cfg config) []string {
	url := fmt.Sprintf("redis://%s/%d", cfg.redisAddr, celeryDB)
	return append(os.Environ(), "CELERY_BROKER="+url, "CELERY_BACKEND="+url, "CELERY_QUEUE="+celeryQueue, "PYTHONDONTWRITEBYTECODE=1")
}

func runPython(cfg config, args ...string) error {
	cmd := exec.Command(pythonBin(), append([]string{"bench.py"}, args...)...)
	cmd.Dir, cmd.Env = celeryDir(), celeryEnv(cfg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bench.py %v: %w: %s", args, err, out)
	}
	return nil
}

// startPythonWorker starts `celery worker` and returns how to stop it.
func startPythonWorker(_ context.Context, cfg config, _ *redis.Client) (func(), error) {
	cmd := exec.Command(pythonBin(), "-m", "celery", "-A", "celeryapp", "worker", "-Q", celeryQueue, "-P", "prefork",
		"-l", "error", "--without-gossip", "--without-mingle", "--without-heartbeat")
	cmd.Dir, cmd.Env = celeryDir(), celeryEnv(cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start celery worker: %w", err)
	}
	return func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }, nil
}

// startGoWorker starts a Conveyor worker on the same queue.
func startGoWorker(ctx context.Context, cfg config, rdb *redis.Client) (func(), error) {
	b, err := celery.New(ctx, celery.Config{Redis: rdb, Prefetch: 256})
	if err != nil {
		return nil, err
	}
	type kw struct {
		T float64 `json:"t"`
	}
	noop := queue.NewTask[celery.Call[kw], [2]float64]("bench.noop", queue.TaskOptions{Queue: celeryQueue})
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: celeryQueue}}, Concurrency: cfg.concurrency[0]})
	worker.Register(w, noop, func(_ context.Context, c celery.Call[kw]) ([2]float64, error) {
		now := float64(time.Now().UnixNano()) / 1e9
		return [2]float64{now - c.Kwargs.T, now}, nil
	})
	if err := w.Start(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(sctx)
		b.Close()
	}, nil
}

func runCelery(ctx context.Context, cfg config, name string, start func(context.Context, config, *redis.Client) (func(), error)) (row, error) {
	r := row{name: name, burn: make([]float64, len(cfg.concurrency))}
	// The sizes, smaller when the run asks for fewer jobs (the
	// bench's own test).
	jobs, streamed := min(celeryJobs, cfg.n), min(celeryStream, max(cfg.n/5, 1))
	rdb := redis.NewClient(&redis.Options{Addr: cfg.redisAddr, DB: celeryDB, PoolSize: 64})
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return r, err
	}
	if err := runPython(cfg, "fill", fmt.Sprint(jobs), "fill"); err != nil {
		return r, err
	}
	stop, err := start(ctx, cfg, rdb)
	if err != nil {
		return r, err
	}
	defer stop()
	fill, err := celeryStarts(ctx, rdb, "fill", jobs)
	if err != nil {
		return r, err
	}
	first, last := fill[0][1], fill[0][1]
	for _, s := range fill {
		first, last = min(first, s[1]), max(last, s[1])
	}
	r.burn[0] = float64(jobs) / (last - first)
	if err := runPython(cfg, "stream", fmt.Sprint(streamed), fmt.Sprint(celeryRate), "stream"); err != nil {
		return r, err
	}
	stream, err := celeryStarts(ctx, rdb, "stream", streamed)
	if err != nil {
		return r, err
	}
	lat := make(latencies, len(stream))
	for i, s := range stream {
		lat[i] = time.Duration(s[0] * float64(time.Second))
	}
	r.p50, r.p99, r.max, r.latencyJobs = lat.quantile(0.50), lat.quantile(0.99), lat.quantile(1), len(lat)
	fmt.Fprintf(os.Stderr, "  %s: drained %d no-op tasks at %.0f/s; enqueue-to-start p50 %s p99 %s at %d/s\n",
		name, jobs, r.burn[0], ms(r.p50), ms(r.p99), celeryRate)
	return r, nil
}

// celeryStarts waits for the results of tasks <prefix>-0..n-1 in Celery's
// result layout and returns each one's [seconds after it was sent, start].
func celeryStarts(ctx context.Context, rdb *redis.Client, prefix string, n int) ([][2]float64, error) {
	out := make([][2]float64, n)
	have := make([]bool, n)
	left := n
	deadline := time.Now().Add(10 * time.Minute)
	for left > 0 {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("celery bench: %d of %d %s results missing", left, n, prefix)
		}
		for lo := 0; lo < n; lo += 1000 {
			var keys []string
			var idx []int
			for i := lo; i < min(lo+1000, n); i++ {
				if !have[i] {
					keys, idx = append(keys, fmt.Sprintf("celery-task-meta-%s-%d", prefix, i)), append(idx, i)
				}
			}
			if len(keys) == 0 {
				continue
			}
			vals, err := rdb.MGet(ctx, keys...).Result()
			if err != nil {
				return nil, err
			}
			for j, v := range vals {
				s, ok := v.(string)
				if !ok {
					continue
				}
				var m struct {
					Status string     `json:"status"`
					Result [2]float64 `json:"result"`
				}
				if err := json.Unmarshal([]byte(s), &m); err != nil || m.Status != "SUCCESS" {
					return nil, fmt.Errorf("celery bench: result %s: %s", keys[j], s)
				}
				out[idx[j]], have[idx[j]] = m.Result, true
				left--
			}
		}
		if left > 0 {
			time.Sleep(100 * time.Millisecond) // a bench, not a test: results are polled
		}
	}
	return out, nil
}
