package worker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/flow/flowtest"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// openSQLite returns n handles on one SQLite file: n worker processes'
// worth of backends.
func openSQLite(t *testing.T, path string, n int) []*sqlitebackend.Backend {
	t.Helper()
	out := make([]*sqlitebackend.Backend, n)
	for i := range out {
		b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		out[i] = b
	}
	return out
}

func startWorker(t *testing.T, w *worker.Worker) {
	t.Helper()
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
}

// counts returns queue q's jobs by state.
func counts(t *testing.T, b backends.Inspector, q string) map[job.State]int {
	t.Helper()
	st, err := b.QueueStats(context.Background(), backends.QueueStatsParams{Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	if len(st) == 0 {
		return map[job.State]int{}
	}
	return st[0].Counts
}

// Two workers on one SQLite file share a rate limit of 5 an hour: of 20
// jobs exactly 5 run, however the workers split them, and the other 15
// wait, postponed, with no attempt and no delivery used. Counted, not
// timed: within the test's run the bucket refills by a small fraction of
// a token.
func TestRateLimitHoldsAcrossWorkers(t *testing.T) {
	bs := openSQLite(t, filepath.Join(t.TempDir(), "rate.db"), 2)
	task := queue.NewTask[Args, queue.None]("flow.rate", queue.TaskOptions{
		Queue: "rated", RateLimit: &flow.RateLimit{Limit: 5, Per: time.Hour},
	})
	var ran atomic.Int64
	for i, b := range bs {
		w := worker.New(b, worker.Config{ID: fmt.Sprintf("w%d", i), Queues: []worker.QueueConfig{{Name: "rated"}},
			Concurrency: 8, PollInterval: 20 * time.Millisecond})
		worker.Register(w, task, func(context.Context, Args) (queue.None, error) { ran.Add(1); return queue.None{}, nil })
		startWorker(t, w)
	}
	c := queue.NewClient(bs[0], queue.Config{})
	reqs := make([]queue.Request, 20)
	for i := range reqs {
		reqs[i] = task.Request(Args{N: i}, nil)
	}
	if _, err := c.EnqueueMany(context.Background(), reqs...); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "5 done and 15 held back", func() bool {
		n := counts(t, bs[0], "rated")
		return n[job.Done] == 5 && n[job.Scheduled] == 15
	})
	if n := ran.Load(); n != 5 {
		t.Fatalf("the handler ran %d times under a limit of 5", n)
	}
	flowtest.HeldBackUnspent(t, bs[0], "rated")
	page, err := bs[0].ListJobs(context.Background(), backends.ListJobsParams{Queue: "rated", State: job.Scheduled})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range page.Jobs {
		if d := time.Until(r.RunAt); d < 5*time.Minute {
			t.Fatalf("held-back job due in %s; the next token is about 12 minutes away", d)
		}
	}
}

// A queue's rate limit in worker.QueueConfig counts every task's jobs of
// the queue in one bucket.
func TestQueueRateLimit(t *testing.T) {
	bs := openSQLite(t, filepath.Join(t.TempDir(), "qrate.db"), 1)
	a := queue.NewTask[Args, queue.None]("flow.qa", queue.TaskOptions{Queue: "qrated"})
	b := queue.NewTask[Args, queue.None]("flow.qb", queue.TaskOptions{Queue: "qrated"})
	w := worker.New(bs[0], worker.Config{Queues: []worker.QueueConfig{{Name: "qrated", RateLimit: &flow.RateLimit{Limit: 3, Per: time.Hour}}},
		PollInterval: 20 * time.Millisecond})
	var ran atomic.Int64
	run := func(context.Context, Args) (queue.None, error) { ran.Add(1); return queue.None{}, nil }
	worker.Register(w, a, run)
	worker.Register(w, b, run)
	c := queue.NewClient(bs[0], queue.Config{})
	var reqs []queue.Request
	for i := range 4 {
		reqs = append(reqs, a.Request(Args{N: i}, nil), b.Request(Args{N: i}, nil))
	}
	if _, err := c.EnqueueMany(context.Background(), reqs...); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	testenv.WaitFor(t, 15*time.Second, "3 done and 5 held back", func() bool {
		n := counts(t, bs[0], "qrated")
		return n[job.Done] == 3 && n[job.Scheduled] == 5
	})
	if n := ran.Load(); n != 3 {
		t.Fatalf("the queue's handlers ran %d times under its limit of 3", n)
	}
}

// runKeyed enqueues n jobs of task over keys tenant-0 to tenant-<keys-1>
// in turn and waits until each has ended done on its first attempt.
func runKeyed(t *testing.T, b backends.Backend, task *queue.Task[Args, queue.None], n, keys int) {
	t.Helper()
	c := queue.NewClient(b, queue.Config{})
	var reqs []queue.Request
	for i := range n {
		reqs = append(reqs, task.Request(Args{N: i}, &queue.EnqueueOptions{Key: fmt.Sprintf("tenant-%d", i%keys)}))
	}
	refs, err := c.EnqueueMany(context.Background(), reqs...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ref := range refs {
		r, err := c.WaitFinished(ctx, ref.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != job.Done || r.Attempts() != 0 {
			t.Fatalf("job %s ended %s after %d attempts", r.ID, r.State, r.Attempts())
		}
	}
}

// outcomeCount counts the deliveries that ended with one outcome.
type outcomeCount struct {
	want worker.Outcome
	n    atomic.Int64
}

func (o *outcomeCount) Started(*job.Record) {}

func (o *outcomeCount) Finished(_ *job.Record, got worker.Outcome, _ time.Duration) {
	if got == o.want {
		o.n.Add(1)
	}
}

// helperEnv names the SQLite file a child process works on in
// TestKilledWorkersSlotComesBack.
const helperEnv = "CONVEYOR_FLOW_HELPER_DB"

var killTask = queue.NewTask[Args, queue.None]("flow.kill", queue.TaskOptions{
	Queue: "kill", ConcurrencyLimit: &flow.ConcurrencyLimit{Limit: 1, Backoff: 20 * time.Millisecond},
})

// A worker process holding the only slot of a key is SIGKILLed: it never
// releases the slot, which comes back when its job's lease ends. The
// other worker then runs both the killed worker's job (redelivered) and
// the one that waited for the slot.
func TestKilledWorkersSlotComesBack(t *testing.T) {
	if path := os.Getenv(helperEnv); path != "" {
		killedWorker(path) // the child: runs until killed
		return
	}
	path := filepath.Join(t.TempDir(), "kill.db")
	bs := openSQLite(t, path, 1)
	c := queue.NewClient(bs[0], queue.Config{})
	first, err := killTask.Enqueue(context.Background(), c, Args{N: 1}, &queue.EnqueueOptions{Key: "acct"})
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestKilledWorkersSlotComesBack$")
	child.Env = append(os.Environ(), helperEnv+"="+path)
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "the child running the first job", func() bool {
		r, err := bs[0].GetJob(context.Background(), backends.GetJobParams{ID: first.ID})
		return err == nil && r.State == job.Running
	})
	if err := child.Process.Kill(); err != nil { // SIGKILL: nothing is released
		t.Fatal(err)
	}
	_ = child.Wait()
	second, err := killTask.Enqueue(context.Background(), c, Args{N: 2}, &queue.EnqueueOptions{Key: "acct"})
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(bs[0], worker.Config{ID: "survivor", Queues: []worker.QueueConfig{{Name: "kill"}},
		LeaseDuration: time.Second, PollInterval: 20 * time.Millisecond})
	worker.Register(w, killTask, func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
	startWorker(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, id := range []string{first.ID, second.ID} {
		r, err := c.WaitFinished(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != job.Done || r.Attempts() != 0 {
			t.Fatalf("job %s ended %s after %d attempts", id, r.State, r.Attempts())
		}
	}
}

// killedWorker runs the first job of killTask with a one-second lease and
// a handler that never returns, until the parent kills the process.
func killedWorker(path string) {
	b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: path})
	if err != nil {
		panic(err)
	}
	w := worker.New(b, worker.Config{ID: "doomed", Queues: []worker.QueueConfig{{Name: "kill"}}, LeaseDuration: time.Second, PollInterval: 20 * time.Millisecond})
	worker.Register(w, killTask, func(ctx context.Context, _ Args) (queue.None, error) {
		<-ctx.Done() // its heartbeat keeps the lease until the kill
		return queue.None{}, ctx.Err()
	})
	if err := w.Start(context.Background()); err != nil {
		panic(err)
	}
	select {}
}

// A job not started by its expiry is dead-lettered with the reason and
// never runs; one before its expiry runs.
func TestExpiredJobsNeverRun(t *testing.T) {
	e := newEnv(t, worker.Config{})
	var ran atomic.Int64
	task := queue.NewTask[Args, queue.None]("flow.expire", queue.TaskOptions{Expires: time.Hour})
	worker.Register(e.w, task, func(context.Context, Args) (queue.None, error) { ran.Add(1); return queue.None{}, nil })
	past := time.Now().Add(-time.Minute)
	stale, err := task.Enqueue(context.Background(), e.c, Args{N: 1}, &queue.EnqueueOptions{ExpiresAt: past, Headers: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := task.Enqueue(context.Background(), e.c, Args{N: 2}, nil) // TaskOptions.Expires: an hour from now
	if err != nil {
		t.Fatal(err)
	}
	e.start()
	r := e.wait(stale.ID)
	want := "expired: not started by " + flow.FormatExpiry(past)
	if r.State != job.Dead || r.LastError() == nil || r.LastError().Error != want {
		t.Fatalf("stale job: %s, %+v; want dead with %q", r.State, r.LastError(), want)
	}
	if r.Headers["k"] != "v" {
		t.Fatalf("headers %v: the caller's header was lost", r.Headers)
	}
	if r := e.wait(fresh.ID); r.State != job.Done {
		t.Fatalf("fresh job ended %s", r.State)
	}
	if n := ran.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want once (the fresh job)", n)
	}
}

// coreOnly is a real backend seen through the core contract alone, as a
// backend without a KVStore or Limiter is.
type coreOnly struct{ backends.Backend }

// A worker with a limited task refuses a backend that cannot hold the
// limit for the whole cluster, rather than limiting each process alone.
func TestLimitNeedsABackendThatHoldsIt(t *testing.T) {
	w := worker.New(coreOnly{membackend.New(membackend.Config{})}, worker.Config{})
	task := queue.NewTask[Args, queue.None]("flow.nostore", queue.TaskOptions{RateLimit: &flow.RateLimit{Limit: 1}})
	worker.Register(w, task, func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
	err := w.Start(context.Background())
	if !errors.Is(err, job.ErrUnsupported) || !strings.Contains(err.Error(), "flow.nostore") {
		t.Fatalf("Start = %v; want job.ErrUnsupported naming the task", err)
	}
	// A bad limit is refused too.
	w2 := worker.New(membackend.New(membackend.Config{}), worker.Config{})
	bad := queue.NewTask[Args, queue.None]("flow.bad", queue.TaskOptions{ConcurrencyLimit: &flow.ConcurrencyLimit{}})
	worker.Register(w2, bad, func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
	if err := w2.Start(context.Background()); !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("Start with a limit of 0 = %v; want job.ErrInvalid", err)
	}
}
