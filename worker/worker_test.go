package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/worker"
)

type Args struct {
	N int `json:"n"`
}

var fastRetry = &retry.Policy{Stop: retry.StopAfterAttempt(3), Wait: retry.WaitFixed(10 * time.Millisecond)}

type env struct {
	t  *testing.T
	b  *membackend.Backend
	c  *queue.Client
	w  *worker.Worker
	mu sync.Mutex
}

func newEnv(t *testing.T, cfg worker.Config) *env {
	t.Helper()
	b := membackend.New(membackend.Config{})
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	return &env{t: t, b: b, c: queue.NewClient(b, queue.Config{}), w: worker.New(b, cfg)}
}

func (e *env) start() {
	e.t.Helper()
	if err := e.w.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.w.Stop(ctx)
	})
}

func (e *env) wait(id string) *job.Record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := e.c.WaitFinished(ctx, id)
	if err != nil {
		e.t.Fatalf("waiting for %s: %v", id, err)
	}
	return r
}

// runAll enqueues reqs in one batch, starts the worker and waits until
// every job has finished.
func (e *env) runAll(reqs ...queue.Request) {
	e.t.Helper()
	refs, err := e.c.EnqueueMany(context.Background(), reqs...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.start()
	for _, r := range refs {
		e.wait(r.ID)
	}
}

func enqueue[A, R any](t *testing.T, c *queue.Client, task *queue.Task[A, R], args A) *queue.Handle[R] {
	t.Helper()
	h, err := task.Enqueue(context.Background(), c, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSuccessResult(t *testing.T) {
	double := queue.NewTask[Args, Args]("double", queue.TaskOptions{})
	e := newEnv(t, worker.Config{})
	worker.Register(e.w, double, func(ctx context.Context, a Args) (Args, error) {
		j, ok := worker.JobFromContext(ctx)
		if !ok || j.Task != "double" {
			return Args{}, errors.New("no job in context")
		}
		return Args{N: a.N * 2}, nil
	})
	e.start()
	h := enqueue(t, e.c, double, Args{N: 21})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := h.Wait(ctx)
	if err != nil || got.N != 42 {
		t.Fatalf("Wait = %v, %v", got, err)
	}
}

func TestRetryThenSucceed(t *testing.T) {
	var calls atomic.Int32
	flaky := queue.NewTask[Args, queue.None]("flaky", queue.TaskOptions{Retry: fastRetry})
	e := newEnv(t, worker.Config{})
	worker.Register(e.w, flaky, func(ctx context.Context, a Args) (queue.None, error) {
		if calls.Add(1) < 3 {
			return queue.None{}, fmt.Errorf("try %d: downstream busy", calls.Load())
		}
		return queue.None{}, nil
	})
	e.start()
	r := e.wait(enqueue(t, e.c, flaky, Args{}).ID)
	if r.State != job.Done || r.Attempts() != 2 || r.Deliveries != 3 {
		t.Fatalf("state %s attempts %d deliveries %d; want done after 2 failures", r.State, r.Attempts(), r.Deliveries)
	}
	if r.Errors[0].Attempt != 1 || !strings.Contains(r.Errors[1].Error, "try 2") || r.Errors[1].At.IsZero() {
		t.Fatalf("attempt errors %+v", r.Errors)
	}
}

func TestFailureOutcomes(t *testing.T) {
	errBad := errors.New("bad address")
	cases := []struct {
		name      string
		handler   func(context.Context, Args) (queue.None, error)
		timeout   time.Duration
		wantErr   string
		wantTries int
		wantStack bool
		wantState job.State
	}{
		{name: "permanent", wantErr: "permanent", wantTries: 1, wantState: job.Dead,
			handler: func(context.Context, Args) (queue.None, error) { return queue.None{}, retry.Permanent(errBad) }},
		{name: "exhausted", wantErr: "retries exhausted: bad address", wantTries: 3, wantState: job.Dead,
			handler: func(context.Context, Args) (queue.None, error) { return queue.None{}, errBad }},
		{name: "panic", wantErr: "panic: kaboom", wantTries: 3, wantStack: true, wantState: job.Dead,
			handler: func(context.Context, Args) (queue.None, error) { panic("kaboom") }},
		{name: "timeout", wantErr: "deadline exceeded", wantTries: 3, wantState: job.Dead, timeout: 20 * time.Millisecond,
			handler: func(ctx context.Context, _ Args) (queue.None, error) { <-ctx.Done(); return queue.None{}, ctx.Err() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			task := queue.NewTask[Args, queue.None]("t."+tc.name, queue.TaskOptions{Retry: fastRetry, Timeout: tc.timeout})
			e := newEnv(t, worker.Config{})
			worker.Register(e.w, task, tc.handler)
			e.start()
			r := e.wait(enqueue(t, e.c, task, Args{}).ID)
			if r.State != tc.wantState || r.Attempts() != tc.wantTries {
				t.Fatalf("state %s after %d attempts; want %s after %d", r.State, r.Attempts(), tc.wantState, tc.wantTries)
			}
			last := r.LastError()
			if !strings.Contains(last.Error, tc.wantErr) || (last.Stack != "") != tc.wantStack {
				t.Fatalf("last error %q (stack %d bytes); want %q", last.Error, len(last.Stack), tc.wantErr)
			}
			if tc.wantStack && !strings.Contains(last.Stack, "worker_test.go") {
				t.Fatalf("stack does not point at the handler:\n%s", last.Stack)
			}
		})
	}
}

// A job written by another producer whose payload does not decode, or
// that a handler finds it cannot dispatch, goes to dead letter at once:
// running it again cannot help. (A task this worker has no handler for is
// another matter: unknown_test.go.)
func TestBadJobsGoToDeadLetter(t *testing.T) {
	task := queue.NewTask[Args, queue.None]("known", queue.TaskOptions{})
	dispatch := queue.NewTask[Args, queue.None]("dispatch", queue.TaskOptions{})
	e := newEnv(t, worker.Config{})
	worker.Register(e.w, task, func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
	worker.Register(e.w, dispatch, func(context.Context, Args) (queue.None, error) {
		return queue.None{}, fmt.Errorf("%w: no route for kind 7", job.ErrUnknownTask)
	})
	e.start()
	res, err := e.b.Enqueue(context.Background(), backends.EnqueueParams{Jobs: []*backends.JobInsert{
		{ID: "malformed", Queue: "default", Task: "known", Payload: []byte(`{"n": "not a number"`)},
		{ID: "undispatchable", Queue: "default", Task: "dispatch", Payload: []byte(`{}`)},
	}})
	if err != nil || len(res) != 2 {
		t.Fatal(err)
	}
	for id, want := range map[string]error{"malformed": job.ErrMalformedPayload, "undispatchable": job.ErrUnknownTask} {
		r := e.wait(id)
		if r.State != job.Dead || r.Deliveries != 1 || !strings.Contains(r.LastError().Error, strings.TrimPrefix(want.Error(), "conveyor: ")) {
			t.Fatalf("%s: state %s deliveries %d errors %+v", id, r.State, r.Deliveries, r.Errors)
		}
	}
}

func TestSnoozeUsesNoAttempt(t *testing.T) {
	var calls atomic.Int32
	task := queue.NewTask[Args, queue.None]("snoozer", queue.TaskOptions{MaxDeliveries: 1})
	e := newEnv(t, worker.Config{})
	worker.Register(e.w, task, func(context.Context, Args) (queue.None, error) {
		if calls.Add(1) <= 3 {
			return queue.None{}, retry.Snooze(5 * time.Millisecond)
		}
		return queue.None{}, nil
	})
	e.start()
	r := e.wait(enqueue(t, e.c, task, Args{}).ID)
	if r.State != job.Done || r.Attempts() != 0 || calls.Load() != 4 {
		t.Fatalf("state %s attempts %d calls %d", r.State, r.Attempts(), calls.Load())
	}
}

func TestNamedRetryPolicy(t *testing.T) {
	task := queue.NewTask[Args, queue.None]("always.fails", queue.TaskOptions{Retry: fastRetry})
	e := newEnv(t, worker.Config{RetryPolicies: map[string]retry.Policy{"once": {Stop: retry.StopAfterAttempt(1)}}})
	worker.Register(e.w, task, func(context.Context, Args) (queue.None, error) { return queue.None{}, errors.New("no") })
	e.start()
	h, err := task.Enqueue(context.Background(), e.c, Args{}, &queue.EnqueueOptions{RetryPolicy: "once"})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.wait(h.ID); r.State != job.Dead || r.Attempts() != 1 {
		t.Fatalf("state %s attempts %d; the named policy allows 1", r.State, r.Attempts())
	}
}

func TestCancelRunningJob(t *testing.T) {
	started := make(chan struct{})
	cause := make(chan error, 1)
	task := queue.NewTask[Args, queue.None]("long", queue.TaskOptions{})
	e := newEnv(t, worker.Config{LeaseDuration: 600 * time.Millisecond})
	worker.Register(e.w, task, func(ctx context.Context, _ Args) (queue.None, error) {
		close(started)
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return queue.None{}, ctx.Err()
	})
	e.start()
	h := enqueue(t, e.c, task, Args{})
	<-started
	if st, err := e.c.Cancel(context.Background(), h.ID); err != nil || st != job.Running {
		t.Fatalf("Cancel = %s, %v", st, err)
	}
	if c := <-cause; !errors.Is(c, worker.ErrCancelRequested) {
		t.Fatalf("handler context cause %v", c)
	}
	if r := e.wait(h.ID); r.State != job.Cancelled || r.Attempts() != 0 {
		t.Fatalf("state %s attempts %d", r.State, r.Attempts())
	}
	_, err := h.Result(context.Background())
	if !errors.Is(err, job.ErrCancelled) {
		t.Fatalf("Result = %v", err)
	}
}

func TestHeartbeatKeepsLongJob(t *testing.T) {
	release := make(chan struct{})
	task := queue.NewTask[Args, queue.None]("slow", queue.TaskOptions{})
	const lease = 300 * time.Millisecond
	e := newEnv(t, worker.Config{LeaseDuration: lease, Concurrency: 2})
	var calls atomic.Int32
	worker.Register(e.w, task, func(ctx context.Context, _ Args) (queue.None, error) {
		calls.Add(1)
		<-release
		return queue.None{}, nil
	})
	e.start()
	h := enqueue(t, e.c, task, Args{})
	// Outlive the lease several times over; heartbeats must keep it.
	time.Sleep(4 * lease)
	close(release)
	if r := e.wait(h.ID); r.State != job.Done || r.Deliveries != 1 || calls.Load() != 1 {
		t.Fatalf("state %s deliveries %d calls %d; want one delivery", r.State, r.Deliveries, calls.Load())
	}
}

func TestGracefulStopReleasesUnfinishedJobs(t *testing.T) {
	started := make(chan struct{}, 2)
	task := queue.NewTask[Args, queue.None]("stubborn", queue.TaskOptions{})
	quick := queue.NewTask[Args, queue.None]("quick", queue.TaskOptions{})
	e := newEnv(t, worker.Config{Concurrency: 2})
	finishQuick := make(chan struct{})
	worker.Register(e.w, task, func(ctx context.Context, _ Args) (queue.None, error) {
		started <- struct{}{}
		<-ctx.Done() // runs until the worker gives up on it
		return queue.None{}, ctx.Err()
	})
	worker.Register(e.w, quick, func(ctx context.Context, _ Args) (queue.None, error) {
		started <- struct{}{}
		<-finishQuick
		return queue.None{}, nil
	})
	if err := e.w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := enqueue(t, e.c, task, Args{})
	hq := enqueue(t, e.c, quick, Args{})
	<-started
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- e.w.Stop(ctx) }()
	close(finishQuick) // finishes within the drain
	if r := e.wait(hq.ID); r.State != job.Done {
		t.Fatalf("quick job %s", r.State)
	}
	cancel() // the drain time is over
	if err := <-stopped; err == nil {
		t.Fatal("Stop reported a clean drain with a job still running")
	}
	r, err := e.c.Job(context.Background(), hs.ID)
	if err != nil || r.State != job.Pending || r.Deliveries != 0 || r.Attempts() != 0 {
		t.Fatalf("released job: %+v, %v; want pending with its delivery given back", r, err)
	}
}

func TestConcurrencyLimits(t *testing.T) {
	const jobs = 30
	task := queue.NewTask[Args, queue.None]("count", queue.TaskOptions{Queue: "limited"})
	e := newEnv(t, worker.Config{Concurrency: 8, Queues: []worker.QueueConfig{{Name: "limited", Concurrency: 3}}})
	var now, peak atomic.Int32
	worker.Register(e.w, task, func(ctx context.Context, _ Args) (queue.None, error) {
		n := now.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		now.Add(-1)
		return queue.None{}, nil
	})
	var reqs []queue.Request
	for i := range jobs {
		reqs = append(reqs, task.Request(Args{N: i}, nil))
	}
	e.runAll(reqs...)
	if p := peak.Load(); p > 3 || p < 2 {
		t.Fatalf("peak concurrency %d; the queue allows 3", p)
	}
}

func TestStrictPriority(t *testing.T) {
	order := runOrder(t, worker.Config{StrictPriority: true, Queues: []worker.QueueConfig{{Name: "high"}, {Name: "low"}}}, 5)
	if strings.Join(order, ",") != "high,high,high,high,high,low,low,low,low,low" {
		t.Fatalf("order %v; strict priority drains high first", order)
	}
}

// runOrder enqueues rounds jobs into each of cfg's queues, interleaved and
// last queue first, runs them one at a time and returns the queue of each
// job in the order they ran.
func runOrder(t *testing.T, cfg worker.Config, rounds int) []string {
	t.Helper()
	cfg.Concurrency, cfg.FetchLimit = 1, 1
	e := newEnv(t, cfg)
	var order []string
	var tasks []*queue.Task[Args, queue.None]
	for _, q := range cfg.Queues {
		task := queue.NewTask[Args, queue.None]("t."+q.Name, queue.TaskOptions{Queue: q.Name})
		worker.Register(e.w, task, func(context.Context, Args) (queue.None, error) {
			e.mu.Lock()
			order = append(order, q.Name)
			e.mu.Unlock()
			return queue.None{}, nil
		})
		tasks = append([]*queue.Task[Args, queue.None]{task}, tasks...)
	}
	var reqs []queue.Request
	for range rounds {
		for _, task := range tasks {
			reqs = append(reqs, task.Request(Args{}, nil))
		}
	}
	e.runAll(reqs...)
	e.mu.Lock()
	defer e.mu.Unlock()
	return order
}

func TestMiddlewareAndErrorHook(t *testing.T) {
	var seen, reported atomic.Int32
	mw := func(next worker.HandlerFunc) worker.HandlerFunc {
		return func(ctx context.Context, j *job.Record) ([]byte, error) {
			seen.Add(1)
			return next(ctx, j)
		}
	}
	task := queue.NewTask[Args, queue.None]("mw", queue.TaskOptions{Retry: &retry.Policy{Stop: retry.StopAfterAttempt(1)}})
	e := newEnv(t, worker.Config{Middleware: []worker.Middleware{mw, worker.OnError(func(context.Context, *job.Record, error) { reported.Add(1) })}})
	worker.Register(e.w, task, func(context.Context, Args) (queue.None, error) { panic("in handler") })
	e.start()
	e.wait(enqueue(t, e.c, task, Args{}).ID)
	if seen.Load() != 1 || reported.Load() != 1 {
		t.Fatalf("middleware saw %d calls, error hook %d; want 1 and 1 (panic reported as an error)", seen.Load(), reported.Load())
	}
}

func TestWeightedPriorityStarvesNoQueue(t *testing.T) {
	order := runOrder(t, worker.Config{Queues: []worker.QueueConfig{{Name: "busy", Weight: 3}, {Name: "rare", Weight: 1}}}, 60)
	// In the first 40 jobs, both queues are full: each fetch round picks
	// "busy" first with probability 3/4, so its count is Binomial(40, 3/4):
	// about 30. Fewer than 18 or all 40 happen by chance about twice in
	// 100,000 runs.
	n := 0
	for _, q := range order[:40] {
		if q == "busy" {
			n++
		}
	}
	if n < 18 || n == 40 {
		t.Fatalf("busy ran %d of the first 40 jobs; weights 3:1 give about 30 and never starve rare", n)
	}
}
