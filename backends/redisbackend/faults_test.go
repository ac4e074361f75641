package redisbackend_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/internal/faulttest"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

type numArgs struct{ N int }

func counts(t *testing.T, b *redisbackend.Backend, q string) map[job.State]int {
	t.Helper()
	st, err := b.QueueStats(context.Background(), backends.QueueStatsParams{Queue: q})
	if err != nil || len(st) != 1 {
		t.Fatalf("QueueStats = %v, %v", st, err)
	}
	return st[0].Counts
}

// Entries written straight into Redis by something other than Conveyor — a
// job hash with unparsable fields, a ready entry with no job behind it, a
// job key of the wrong type — are reported and set aside; the worker keeps
// running the good jobs.
func TestMalformedEntriesDoNotStopTheWorker(t *testing.T) {
	ctx := context.Background()
	client := newClient(t)
	prefix := "malformed-" + time.Now().Format("150405.000000")
	b := open(t, client, redisbackend.Config{Prefix: prefix})
	task := queue.NewTask[numArgs, queue.None]("malformed.ok", queue.TaskOptions{Queue: "m"})
	c := queue.NewClient(b, queue.Config{})
	var reqs []queue.Request
	for i := range 20 {
		reqs = append(reqs, task.Request(numArgs{N: i}, nil))
	}
	refs, err := c.EnqueueMany(ctx, reqs...)
	if err != nil {
		t.Fatal(err)
	}
	base := prefix + ":{m}"
	// Corrupt one real job's headers, and add two ready entries that point
	// at no job hash.
	bad := refs[7].ID
	must(t, client.HSet(ctx, base+":j:"+bad, "h", "{not json").Err())
	must(t, client.Set(ctx, base+":j:stringjob", "x", 0).Err())
	must(t, client.ZAdd(ctx, base+":ready",
		redis.Z{Score: 0, Member: "0000000000000:0000000000000001:ghost"},
		redis.Z{Score: 0, Member: "0000000000000:0000000000000002:stringjob"},
		redis.Z{Score: 0, Member: "short"}).Err())

	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "m"}}, Concurrency: 4, PollInterval: 50 * time.Millisecond})
	var ran sync.Map
	worker.Register(w, task, func(ctx context.Context, a numArgs) (queue.None, error) {
		ran.Store(a.N, true)
		return queue.None{}, nil
	})
	must(t, w.Start(ctx))
	defer w.Stop(ctx)
	testenv.WaitFor(t, 15*time.Second, "19 good jobs done and the corrupt one dead", func() bool {
		n := counts(t, b, "m")
		return n[job.Done] == 19 && n[job.Dead] == 1
	})
	_, err = b.GetJob(ctx, backends.GetJobParams{ID: bad})
	if !errors.Is(err, job.ErrMalformedPayload) {
		t.Fatalf("GetJob(corrupt) = %v, want ErrMalformedPayload", err)
	}
	must(t, client.HSet(ctx, base+":j:"+bad, "h", "").Err()) // repair it to read the reason
	r, err := b.GetJob(ctx, backends.GetJobParams{ID: bad})
	if err != nil || r.State != job.Dead || !strings.Contains(r.LastError().Error, "corrupt job record") {
		t.Fatalf("corrupt job after the run: %+v, %v", r, err)
	}
	if n, _ := client.ZCard(ctx, base+":ready").Result(); n != 0 {
		t.Fatalf("%d malformed ready entries left behind", n)
	}
}

// Redis is shut down and started again (append-only persistence) while a
// worker runs and an enqueuer keeps enqueuing. The worker reconnects and
// carries on; every job whose enqueue succeeded runs.
func TestWorkerRidesOutRedisRestart(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: time.Second})
	defer client.Close()
	b := open(t, client, redisbackend.Config{})
	faulttest.RideOutRestart(t, b, srv, faulttest.RestartParams{Server: "Redis", Queue: "r", Poll: 50 * time.Millisecond,
		Jobs: 200, After: 30 * time.Second})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
