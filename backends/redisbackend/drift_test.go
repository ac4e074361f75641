package redisbackend_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// driftEnv is a backend without a background janitor (the test runs Tidy
// when it means to), its raw client and key base for queue "d", the file
// its log goes to (slog's handler serializes the writes, and reading the
// file back races with none), and a queue client bounding "d" to bound
// unfinished jobs (0: unbounded).
type driftEnv struct {
	b      *redisbackend.Backend
	client *redis.Client
	base   string
	log    string
	c      *queue.Client
	task   *queue.Task[numArgs, queue.None]
}

func newDriftEnv(t *testing.T, bound int) *driftEnv {
	e := &driftEnv{client: newClient(t), log: filepath.Join(t.TempDir(), "log")}
	f, err := os.Create(e.log)
	must(t, err)
	t.Cleanup(func() { _ = f.Close() })
	prefix := "drift-" + t.Name() + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	e.base = prefix + ":{d}"
	e.b = open(t, e.client, redisbackend.Config{Prefix: prefix, JanitorEvery: -1,
		Logger: slog.New(slog.NewTextHandler(f, nil))})
	e.c = queue.NewClient(e.b, queue.Config{Queues: []*queue.Queue{queue.NewQueue("d", queue.QueueOptions{MaxDepth: bound})}})
	e.task = queue.NewTask[numArgs, queue.None]("drift.job", queue.TaskOptions{Queue: "d"})
	return e
}

// logged fails the test unless the log names id.
func (e *driftEnv) logged(t *testing.T, id string) {
	t.Helper()
	b, err := os.ReadFile(e.log)
	must(t, err)
	if !bytes.Contains(b, []byte(id)) {
		t.Fatalf("log does not name %s:\n%s", id, b)
	}
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
				e := newDriftEnv(t, 1)
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
				e.logged(t, id)
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

func (e *driftEnv) inSet(t *testing.T, set, id string) bool {
	t.Helper()
	err := e.client.ZScore(context.Background(), e.base+":"+set, id).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	return err == nil
}

// State sets drifted by hand, each way they can: a job's ID in a second,
// wrong set; a job's ID only in a wrong set; an ID in a set with no job
// hash at all. One Tidy heals each: the counts are the jobs' true states
// again, the jobs still run, and the log names what was fixed.
func TestTidyHealsStateSetDrift(t *testing.T) {
	ctx := context.Background()
	e := newDriftEnv(t, 0)
	twice, moved := e.enqueue(t, 0), e.enqueue(t, 0)
	must(t, e.client.ZAdd(ctx, e.base+":s:scheduled", redis.Z{Score: 1, Member: twice}).Err())
	must(t, e.client.ZRem(ctx, e.base+":s:pending", moved).Err())
	must(t, e.client.ZAdd(ctx, e.base+":s:done", redis.Z{Score: 2, Member: moved}).Err())
	must(t, e.client.ZAdd(ctx, e.base+":s:running", redis.Z{Score: 3, Member: "ghost"}).Err())
	e.wantCounts(t, map[job.State]int{job.Pending: 1, job.Scheduled: 1, job.Done: 1, job.Running: 1})

	must(t, e.b.Tidy(ctx))
	e.wantCounts(t, map[job.State]int{job.Pending: 2})
	if !e.inSet(t, "s:pending", moved) {
		t.Fatalf("%s is not back in the pending set", moved)
	}
	for _, id := range []string{twice, moved, "ghost"} {
		e.logged(t, id)
	}
	got, err := e.b.Reserve(ctx, backends.ReserveParams{Queue: "d", Limit: 10, Lease: time.Minute, Worker: "w"})
	if err != nil || len(got) != 2 {
		t.Fatalf("reserve after healing = %d jobs, %v; want both", len(got), err)
	}
}

// The reconcile walk checks a bounded number of members per Tidy and goes
// on where it stopped, so a stray behind more than a batch of good members
// outlives the first Tidy and is gone once the walk reaches it.
func TestReconcileIsBoundedAndCoversTheQueue(t *testing.T) {
	ctx := context.Background()
	e := newDriftEnv(t, 0)
	n := 2*redisbackend.ReconcileBatch + 1
	reqs := make([]queue.Request, n)
	for i := range reqs {
		reqs[i] = e.task.Request(numArgs{N: i}, nil)
	}
	if _, err := e.c.EnqueueMany(ctx, reqs...); err != nil {
		t.Fatal(err)
	}
	// Scored after every real job, so the walk meets it last.
	must(t, e.client.ZAdd(ctx, e.base+":s:pending", redis.Z{Score: 1e12, Member: "ghost"}).Err())
	runs := 0
	for e.inSet(t, "s:pending", "ghost") {
		if runs == n/redisbackend.ReconcileBatch+1 {
			t.Fatalf("ghost still counted after %d Tidy runs over %d members", runs, n+1)
		}
		must(t, e.b.Tidy(ctx))
		runs++
	}
	if runs == 1 {
		t.Fatalf("one Tidy checked all %d members; the walk is not bounded by %d", n+1, redisbackend.ReconcileBatch)
	}
	e.wantCounts(t, map[job.State]int{job.Pending: n})
}

// A purge goes by set membership; a member whose hash names another state
// is drift, and the job behind it, here a running one, must survive.
func TestPurgeLeavesADriftedJobAlone(t *testing.T) {
	ctx := context.Background()
	e := newDriftEnv(t, 0)
	id := e.enqueue(t, 0)
	if got, err := e.b.Reserve(ctx, backends.ReserveParams{Queue: "d", Limit: 1, Lease: time.Minute, Worker: "w"}); err != nil || len(got) != 1 {
		t.Fatalf("reserve = %v, %v", got, err)
	}
	must(t, e.client.ZAdd(ctx, e.base+":s:pending", redis.Z{Score: 1, Member: id}).Err())
	n, err := e.b.PurgeQueue(ctx, backends.PurgeQueueParams{Queue: "d", States: []job.State{job.Pending}})
	if err != nil || n != 0 {
		t.Fatalf("PurgeQueue = %d, %v; want nothing purged", n, err)
	}
	if r, err := e.b.GetJob(ctx, backends.GetJobParams{ID: id}); err != nil || r.State != job.Running {
		t.Fatalf("running job after the purge = %+v, %v", r, err)
	}
	e.wantCounts(t, map[job.State]int{job.Running: 1})
}

// Cancel and delete of a job whose hash names an unknown state cannot tell
// which state set holds its ID, so they clear every one: no phantom stays.
func TestCorruptJobCancelledOrDeletedLeavesNoPhantom(t *testing.T) {
	ctx := context.Background()
	e := newDriftEnv(t, 0)
	cancelled, deleted := e.enqueue(t, 0), e.enqueue(t, time.Hour)
	for _, id := range []string{cancelled, deleted} {
		must(t, e.client.HSet(ctx, e.base+":j:"+id, "s", "bogus").Err())
	}
	if st, err := e.b.Cancel(ctx, backends.CancelParams{JobID: cancelled}); err != nil || st != job.Cancelled {
		t.Fatalf("Cancel = %v, %v; want cancelled", st, err)
	}
	if n, err := e.b.DeleteJobs(ctx, backends.DeleteJobsParams{IDs: []string{deleted}}); err != nil || n != 1 {
		t.Fatalf("DeleteJobs = %d, %v; want 1", n, err)
	}
	e.wantCounts(t, map[job.State]int{job.Cancelled: 1})
	if e.inSet(t, "later", deleted) {
		t.Fatalf("the deleted job is still in later")
	}
}

// Stale ready-set members (entries a job no longer has: written by hand,
// or left by drift) ahead of the due jobs do not shorten a Reserve: it
// drops them and fills its limit from the jobs behind them. It had counted
// its reply's fields, not jobs, and stopped early.
func TestReserveFillsItsLimitPastStaleEntries(t *testing.T) {
	e := newDriftEnv(t, 0)
	ctx := context.Background()
	var ids []string
	for range 5 {
		ids = append(ids, e.enqueue(t, 0))
	}
	for _, id := range ids[:3] { // older than any real member: first in the set
		must(t, e.client.ZAdd(ctx, e.base+":ready", redis.Z{Score: 0, Member: "0000000000000:0000000000000000:" + id}).Err())
	}
	recs, err := e.b.Reserve(ctx, backends.ReserveParams{Queue: "d", Limit: 5, Lease: time.Minute, Worker: "w"})
	must(t, err)
	if len(recs) != 5 {
		t.Fatalf("Reserve(limit 5) past 3 stale entries returned %d jobs", len(recs))
	}
}
