package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// The cluster rows: the same workloads with the jobs spread over 16
// queues, on one node and on a cluster in the same run, so the ratio is
// the cluster's cost for the same work. On one machine (2 cores where
// docs/scaling.md measured) the nodes share the CPUs, so the ratio shows
// the overhead of routing and replication, not what more machines add.
//
//   - redis-16q on the single Redis; redis-cluster-16q on the 3-master
//     Redis Cluster (CONVEYOR_REDIS_CLUSTER), whose 16 queues' hash tags
//     spread their slots over all three masters.
//   - amqp-16q on the single RabbitMQ node; amqp-cluster-16q on the 3-node
//     cluster (CONVEYOR_RABBITMQ_CLUSTER_URL, a URL naming every node, as
//     scripts/lib/clusters.sh starts it), each queue a quorum queue with a
//     member on every node.
//
// The rows are there when their cluster's variable is set: the benchmark's
// test runs every row, and a machine without the clusters has none.
func init() {
	if cl := os.Getenv("CONVEYOR_REDIS_CLUSTER"); cl != "" {
		targets = append(targets,
			target{name: "redis-16q", needs: needRedis, run: spread("redis-16q", openRedis)},
			target{name: "redis-cluster-16q", vs: "redis-16q", needs: always, run: spread("redis-cluster-16q", openRedisCluster(strings.Split(cl, ",")))})
	}
	if url := os.Getenv("CONVEYOR_RABBITMQ_CLUSTER_URL"); url != "" {
		targets = append(targets,
			target{name: "amqp-16q", needs: needRabbit, run: spread("amqp-16q", openAMQPSpread(""))},
			target{name: "amqp-cluster-16q", vs: "amqp-16q", needs: always, run: spread("amqp-cluster-16q", openAMQPSpread(url))})
	}
}

// spreadQueues names the 16 queues.
var spreadQueues = func() []string {
	qs := make([]string, 16)
	for i := range qs {
		qs[i] = fmt.Sprintf("spread%02d", i)
	}
	return qs
}()

type opener = func(ctx context.Context, cfg config) (backends.Backend, func(), error)

// openRedisCluster opens a backend on the cluster under a prefix of its
// own, and deletes its keys afterwards (the cluster is shared: no flush).
func openRedisCluster(addrs []string) opener {
	return func(ctx context.Context, _ config) (backends.Backend, func(), error) {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 64})
		prefix := benchName("redis")
		b, err := redisbackend.New(ctx, redisbackend.Config{Client: c, Prefix: prefix})
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		return b, func() {
			b.Close()
			_ = c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
				iter := m.Scan(ctx, 0, prefix+":*", 1000).Iterator()
				for iter.Next(ctx) {
					m.Del(ctx, iter.Val())
				}
				return iter.Err()
			})
			c.Close()
		}, nil
	}
}

// openAMQPSpread opens the broker alone at url (default the -rabbitmq
// one) and deletes the 16 queues afterwards.
func openAMQPSpread(url string) opener {
	return func(ctx context.Context, cfg config) (backends.Backend, func(), error) {
		if url == "" {
			url = cfg.rabbitURL
		}
		prefix := benchName("spread")
		b, err := amqpbackend.Open(ctx, amqpbackend.Config{URL: url, Prefix: prefix})
		if err != nil {
			return nil, nil, err
		}
		return b, func() {
			b.Close()
			var qs []string
			for _, q := range spreadQueues {
				qs = append(qs, prefix+".q."+q, prefix+".dead."+q)
			}
			deleteQueues(firstAddress(url), qs, []string{prefix + ".work", prefix + ".dead"})
		}, nil
	}
}

// firstAddress cuts a URL naming several nodes to its first, for the raw
// client, which dials one.
func firstAddress(url string) string {
	scheme, rest, _ := strings.Cut(url, "://")
	at := strings.LastIndexByte(rest, '@') + 1
	end := strings.IndexAny(rest[at:], "/?")
	if end < 0 {
		end = len(rest) - at
	}
	first, _, _ := strings.Cut(rest[at:at+end], ",")
	return scheme + "://" + rest[:at] + first + rest[at+end:]
}

// spreadWorker serves the 16 queues.
func spreadWorker(b backends.Backend, concurrency int, handle func(noopArgs)) *worker.Worker {
	qc := make([]worker.QueueConfig, len(spreadQueues))
	for i, q := range spreadQueues {
		qc[i] = worker.QueueConfig{Name: q}
	}
	w := worker.New(b, worker.Config{Concurrency: concurrency, Queues: qc})
	worker.Register(w, noop, func(_ context.Context, a noopArgs) (queue.None, error) {
		handle(a)
		return queue.None{}, nil
	})
	return w
}

// on is the enqueue options of the i-th job or batch: the queues in turn.
func on(i int) *queue.EnqueueOptions {
	return &queue.EnqueueOptions{Queue: spreadQueues[i%len(spreadQueues)]}
}

// spread is a row's run: runConveyor's workloads with the jobs over the
// 16 queues (a batch on one queue, the batches in turn) and one worker
// serving all of them.
func spread(name string, open opener) func(ctx context.Context, cfg config) (row, error) {
	return func(ctx context.Context, cfg config) (row, error) {
		r := row{name: name}
		b, done, err := open(ctx, cfg)
		if err != nil {
			return r, err
		}
		c := queue.NewClient(b, queue.Config{})
		start := time.Now()
		for i := range cfg.single {
			if _, err := noop.Enqueue(ctx, c, noopArgs{}, on(i)); err != nil {
				done()
				return r, err
			}
		}
		r.single = float64(cfg.single) / time.Since(start).Seconds()
		done()
		err = runDrains(cfg, &r, func(n, conc int, args noopArgs, enqueueRate *float64) (float64, error) {
			b, done, err := open(ctx, cfg)
			if err != nil {
				return 0, err
			}
			defer done()
			return spreadDrain(ctx, b, cfg, n, conc, args, enqueueRate)
		})
		if err != nil {
			return r, err
		}
		if b, done, err = open(ctx, cfg); err != nil {
			return r, err
		}
		defer done()
		rec := newRecorder(int(cfg.duration.Seconds() * float64(cfg.rate)))
		w := spreadWorker(b, cfg.concurrency[0], func(a noopArgs) { rec.record(a.At) })
		if err := w.Start(ctx); err != nil {
			return r, err
		}
		defer w.Stop(ctx)
		lc, i := queue.NewClient(b, queue.Config{}), 0
		return r, r.measureLatency(rec, cfg.rate, func() error {
			i++
			_, err := noop.Enqueue(ctx, lc, noopArgs{At: time.Now().UnixNano()}, on(i))
			return err
		})
	}
}

// spreadDrain enqueues n jobs over the queues in batches, then times one
// worker draining them at concurrency conc.
func spreadDrain(ctx context.Context, b backends.Backend, cfg config, n, conc int, args noopArgs, enqueueRate *float64) (float64, error) {
	c := queue.NewClient(b, queue.Config{})
	batch := cfg.batch
	if args != (noopArgs{}) {
		batch = min(batch, 10) // 1 MB payloads: ten to a call
	}
	start := time.Now()
	reqs := make([]queue.Request, 0, batch)
	for i := 0; i < n; i += batch {
		reqs = reqs[:0]
		for range min(batch, n-i) {
			reqs = append(reqs, noop.Request(args, on(i/batch)))
		}
		if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
			return 0, err
		}
	}
	if enqueueRate != nil {
		*enqueueRate = float64(n) / time.Since(start).Seconds()
	}
	all := newCountdown(n)
	w := spreadWorker(b, conc, func(a noopArgs) { a.work(); all.ran1() })
	start = time.Now()
	if err := w.Start(ctx); err != nil {
		return 0, err
	}
	if err := all.wait("burn-down over 16 queues"); err != nil {
		return 0, err
	}
	if err := w.Stop(ctx); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
