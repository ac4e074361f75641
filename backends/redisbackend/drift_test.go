package redisbackend_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// logBuffer holds what a backend logs; a backend may log from its own
// goroutines, hence the lock.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// driftEnv is a backend without a background janitor (the test runs Tidy
// when it means to), its raw client and key base for queue "d", its log,
// and a queue client bounding "d" to one unfinished job.
type driftEnv struct {
	b      *redisbackend.Backend
	client *redis.Client
	base   string
	log    *logBuffer
	c      *queue.Client
	task   *queue.Task[numArgs, queue.None]
}

func newDriftEnv(t *testing.T) *driftEnv {
	e := &driftEnv{client: newClient(t), log: &logBuffer{}}
	prefix := "drift-" + time.Now().Format("150405.000000")
	e.base = prefix + ":{d}"
	e.b = open(t, e.client, redisbackend.Config{Prefix: prefix, JanitorEvery: -1,
		Logger: slog.New(slog.NewTextHandler(e.log, nil))})
	e.c = queue.NewClient(e.b, queue.Config{Queues: map[string]queue.QueueConfig{"d": {MaxDepth: 1}}})
	e.task = queue.NewTask[numArgs, queue.None]("drift.job", queue.TaskOptions{Queue: "d"})
	return e
}

func (e *driftEnv) enqueue(t *testing.T, delay time.Duration) string {
	t.Helper()
	h, err := e.task.Enqueue(context.Background(), e.c, numArgs{}, &queue.EnqueueOptions{Delay: delay})
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return h.ID
}

func (e *driftEnv) wantCounts(t *testing.T, want map[job.State]int) {
	t.Helper()
	if got := counts(t, e.b, "d"); !maps.Equal(got, want) {
		t.Fatalf("QueueStats counts = %v, want %v", got, want)
	}
}

// The repro: a queue bounded to one job holds one delayed job whose
// hash is then corrupted (an unknown state) or deleted. Before the fix its
// ID stayed in the scheduled set, so the queue counted a phantom and stayed
// full for good. Both ways the broken job is met, reserve's promotion of
// due jobs and the janitor's reconcile of a job not yet due, must take the
// ID out of every set: the corrupt job ends dead with the reason, the
// deleted one is logged, and the queue takes a job again.
func TestBrokenDelayedJobLeavesNoPhantom(t *testing.T) {
	ctx := context.Background()
	for _, broken := range []string{"bogus state", "deleted hash"} {
		for _, via := range []string{"reserve", "tidy"} {
			t.Run(broken+" via "+via, func(t *testing.T) {
				e := newDriftEnv(t)
				// Reserve meets the job once it is due; the janitor's
				// reconcile meets it whenever.
				delay := time.Hour
				if via == "reserve" {
					delay = 20 * time.Millisecond
				}
				id := e.enqueue(t, delay)
				if _, err := e.task.Enqueue(ctx, e.c, numArgs{}, nil); !errors.Is(err, job.ErrQueueFull) {
					t.Fatalf("second enqueue before the corruption = %v, want ErrQueueFull", err)
				}
				if broken == "bogus state" {
					must(t, e.client.HSet(ctx, e.base+":j:"+id, "s", "bogus").Err())
				} else {
					must(t, e.client.Del(ctx, e.base+":j:"+id).Err())
				}

				if via == "reserve" {
					testenv.WaitFor(t, 10*time.Second, "reserve to meet the due job", func() bool {
						got, err := e.b.Reserve(ctx, backends.ReserveParams{Queue: "d", Limit: 10, Lease: time.Minute, Worker: "w"})
						must(t, err)
						if len(got) > 0 {
							t.Fatalf("reserve handed out the broken job: %+v", got[0])
						}
						return counts(t, e.b, "d")[job.Scheduled] == 0
					})
				} else {
					must(t, e.b.Tidy(ctx))
				}

				if broken == "bogus state" {
					e.wantCounts(t, map[job.State]int{job.Dead: 1})
					r, err := e.b.GetJob(ctx, backends.GetJobParams{ID: id})
					if err != nil || r.State != job.Dead || r.LastError().Error != `corrupt job record: unknown state "bogus"` {
						t.Fatalf("corrupt job = %+v (last error %+v), %v; want dead with the reason", r, r.LastError(), err)
					}
					page, err := e.b.ListJobs(ctx, backends.ListJobsParams{Queue: "d", State: job.Dead})
					if err != nil || len(page.Jobs) != 1 || page.Jobs[0].ID != id {
						t.Fatalf("dead letters = %+v, %v; want the corrupt job", page, err)
					}
				} else {
					e.wantCounts(t, map[job.State]int{})
				}
				if !strings.Contains(e.log.String(), id) {
					t.Fatalf("log does not name %s:\n%s", id, e.log.String())
				}
				for _, k := range []string{":later", ":leased"} {
					if err := e.client.ZScore(ctx, e.base+k, id).Err(); !errors.Is(err, redis.Nil) {
						t.Fatalf("%s still holds %s (%v)", k, id, err)
					}
				}
				e.enqueue(t, 0) // room again
				want := map[job.State]int{job.Pending: 1}
				if broken == "bogus state" {
					want[job.Dead] = 1
				}
				e.wantCounts(t, want)
			})
		}
	}
}
