package chaos_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// TestClusterRedis runs on the Redis Cluster of 3 masters and 3 replicas:
// the conformance suite; a worker serving 16 queues, which reach every
// master; then the chaos workload while the master of the main queue is
// killed twice, its replica promoted and the killed node brought back as
// a replica. Every write WAITs for a replica (redisbackend.Config.WaitReplicas), so a
// failover loses nothing acknowledged.
func TestClusterRedis(t *testing.T) {
	t.Parallel()
	// go-redis logs every refused dial to the killed master; the run's
	// report says what the failovers cost.
	redis.SetLogger(quietRedis{})
	addrs := strings.Split(clusterEnv(t, "CONVEYOR_REDIS_HA_CLUSTER"), ",")
	t.Run("conformance", func(t *testing.T) {
		client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		t.Cleanup(func() { _ = client.Close() })
		backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
			b, err := redisbackend.New(context.Background(), redisbackend.Config{Client: client, Clock: clock, Prefix: uniquePrefix()})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, SlotRulesUnsupported: true}.Run(t) // a limit spans queues on other nodes
	})
	t.Run("16 queues reach every master", func(t *testing.T) { sixteenQueues(t, addrs) })
	t.Run("failover", func(t *testing.T) {
		// CONVEYOR_CHAOS_REDIS_WAIT=0 runs without WAIT, to measure what
		// asynchronous replication loses (docs/scaling.md).
		wait := 1
		if v, err := strconv.Atoi(os.Getenv("CONVEYOR_CHAOS_REDIS_WAIT")); err == nil {
			wait = v
		}
		sp := spec{Kind: "redis", URL: "redis+cluster://" + strings.Join(addrs, ","), Prefix: uniquePrefix(), Wait: wait}
		f := &redisFailover{t: t, addrs: addrs, tag: mainQueue}
		runChaos(t, chaosCase{spec: sp, server: f, corrupt: redisCorruptors(sp), lossAllowed: wait == 0, failover: true})
		for i, d := range f.took {
			t.Logf("failover %d: replica promoted %s after the kill", i+1, d.Round(time.Millisecond))
		}
	})
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// spreadTask is the 16-queue test's job.
var spreadTask = queue.NewTask[int, queue.None]("chaos.spread", queue.TaskOptions{})

// sixteenQueues: one worker serves 16 queues, whose hash tags put them in
// slots of every master; each master runs scripts for them, and every
// job finishes.
func sixteenQueues(t *testing.T, addrs []string) {
	ctx := context.Background()
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = client.Close() })
	queues := make([]string, 16)
	var qcfg []worker.QueueConfig
	masters := map[string][]string{} // master -> its queues
	for i := range queues {
		queues[i] = fmt.Sprintf("spread%02d", i)
		qcfg = append(qcfg, worker.QueueConfig{Name: queues[i]})
		slot, err := client.ClusterKeySlot(ctx, "{"+queues[i]+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		m, err := slotOwner(ctx, addrs[0], slot)
		if err != nil {
			t.Fatal(err)
		}
		masters[m] = append(masters[m], queues[i])
	}
	if len(masters) != 3 {
		t.Fatalf("16 queues' slots are on %d masters, want all 3: %v", len(masters), masters)
	}
	scripts := func() map[string]int {
		out := map[string]int{}
		for m := range masters {
			info, err := redisInfo(ctx, m, "commandstats")
			if err != nil {
				t.Fatal(err)
			}
			// cmdstat_evalsha:calls=N,usec=...
			calls, _, _ := strings.Cut(strings.TrimPrefix(info["cmdstat_evalsha"], "calls="), ",")
			out[m], _ = strconv.Atoi(calls)
		}
		return out
	}
	before := scripts()

	b, err := redisbackend.New(ctx, redisbackend.Config{Client: client, Prefix: uniquePrefix()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	const perQueue = 20
	var mu sync.Mutex
	ran := map[string]int{}
	all := make(chan struct{})
	w := worker.New(b, worker.Config{Queues: qcfg, Concurrency: 16, PollInterval: 50 * time.Millisecond})
	worker.Register(w, spreadTask, func(ctx context.Context, _ int) (queue.None, error) {
		rec, _ := worker.JobFromContext(ctx)
		mu.Lock()
		defer mu.Unlock()
		ran[rec.Queue]++
		if len(ran) == len(queues) && allAt(ran, perQueue) {
			close(all)
		}
		return queue.None{}, nil
	})
	c := queue.NewClient(b, queue.Config{})
	for _, q := range queues {
		reqs := make([]queue.Request, perQueue)
		for i := range reqs {
			reqs[i] = spreadTask.Request(i, &queue.EnqueueOptions{Queue: q})
		}
		if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
			t.Fatalf("enqueue on %s: %v", q, err)
		}
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-all:
	case <-time.After(time.Minute):
		mu.Lock()
		t.Errorf("after a minute the worker ran %v of %d jobs per queue", ran, perQueue)
		mu.Unlock()
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	after := scripts()
	for m, qs := range masters {
		if after[m] <= before[m] {
			t.Errorf("master %s (queues %v) ran no script while the worker ran their jobs", m, qs)
		}
		t.Logf("master %s: queues %v, %d scripts run", m, qs, after[m]-before[m])
	}
}

// allAt reports whether every queue ran n jobs (more would be a rerun,
// which this test, killing nothing, must not see either).
func allAt(ran map[string]int, n int) bool {
	for _, v := range ran {
		if v != n {
			return false
		}
	}
	return true
}
