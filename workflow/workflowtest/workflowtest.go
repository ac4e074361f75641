package workflowtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/worker"
	"github.com/conveyorhq/conveyor/workflow"
)

// Opener returns a fresh, empty backend for one test; the suite closes it.
// It must be a backends.KVStore, a backends.Inspector and a backends.Admin.
type Opener func(t *testing.T) backends.Backend

const q = "wf"

type num struct {
	N int `json:"n"`
}

type label struct {
	Name string `json:"name"`
}

// sum returns its N plus the results of every step it depends on.
var sum = queue.NewTask[num, int]("workflowtest.sum", queue.TaskOptions{Queue: q})

// trace returns the names of the steps it depends on with what they gave,
// failures included, and its own name: a step that sees everything.
var trace = queue.NewTask[label, []string]("workflowtest.trace", queue.TaskOptions{Queue: q})

// flaky fails for good (dead at once) while the test says so.
var flaky = queue.NewTask[label, string]("workflowtest.flaky", queue.TaskOptions{Queue: q})

// text wants the previous step's result as a string.
var text = queue.NewTask[label, string]("workflowtest.text", queue.TaskOptions{Queue: q})

// block runs until its context is cancelled.
var block = queue.NewTask[label, string]("workflowtest.block", queue.TaskOptions{Queue: q})

// unencodable has an argument type JSON cannot encode.
var unencodable = queue.NewTask[chan int, int]("workflowtest.unencodable", queue.TaskOptions{Queue: q})

// Run runs the suite's cases on the backends open returns, each case on a
// backend of its own.
func Run(t *testing.T, open Opener) {
	cases := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"DiamondPassesResults", testDiamond},
		{"ChainOrderAndPrevious", testChain},
		{"NestedChainOfGroupsAndChord", testNested},
		{"EnqueueIsAllOrNothing", testAllOrNothing},
		{"DeadStepCancelsDependents", testDeadCancels},
		{"AllowFailureRunsWithTheFailureVisible", testAllowFailure},
		{"CancelStopsPendingSteps", testCancel},
		{"ReplayOfADeadStepContinues", testReplay},
		{"ReconcilerHealsACrashBeforeTheAdvance", testCrashHealed},
		{"IdempotentEnqueueByID", testIdempotent},
		{"WaitWithStartedWorkers", testStarted},
		{"BadResultDeadLettersTheStep", testBadResult},
		{"CancelStopsARunningStep", testCancelRunning},
		{"ChordOfAThousand", testLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, newEnv(t, open))
		})
	}
}

// env is one backend with a client, an engine and a worker on it.
type env struct {
	t   *testing.T
	b   backends.Backend
	c   *queue.Client
	e   *workflow.Engine
	w   *worker.Worker
	ctx context.Context

	mu      sync.Mutex
	ran     []string        // step names in the order their handlers ran
	fails   map[string]bool // flaky steps that fail while set
	started chan string     // block steps, as they start
}

func newEnv(t *testing.T, open Opener) *env { return newEnvAt(t, open, nil) }

// newEnvAt is newEnv with the engine on clock (nil: the system clock).
func newEnvAt(t *testing.T, open Opener, clock backends.Clock) *env {
	b := open(t)
	t.Cleanup(func() { _ = b.Close() })
	c := queue.NewClient(b, queue.Config{})
	e, err := workflow.NewEngine(c, workflow.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	en := &env{t: t, b: b, c: c, e: e, ctx: ctx, fails: map[string]bool{}, started: make(chan string, 16)}
	en.w = en.worker()
	return en
}

func (en *env) worker() *worker.Worker {
	w := worker.New(en.b, en.e.Install(worker.Config{
		Queues: []worker.QueueConfig{{Name: q}}, Concurrency: 4,
		LeaseDuration: 3 * time.Second, // heartbeats, which carry cancel requests, every second
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)), QuietFailedAttempts: true,
	}))
	worker.Register(w, sum, func(ctx context.Context, a num) (int, error) {
		en.note(ctx)
		deps, err := workflow.All[int](ctx)
		if err != nil {
			return 0, err
		}
		total := a.N
		for _, d := range deps {
			total += d
		}
		return total, nil
	})
	worker.Register(w, trace, func(ctx context.Context, a label) ([]string, error) {
		en.note(ctx)
		outs, err := workflow.Results(ctx)
		if err != nil {
			return nil, err
		}
		var seen []string
		for _, o := range outs {
			var v any
			if err := o.Decode(&v); err != nil {
				seen = append(seen, o.Step+"!"+string(o.State))
				continue
			}
			seen = append(seen, fmt.Sprintf("%s=%v", o.Step, v))
		}
		return append(seen, a.Name), nil
	})
	worker.Register(w, flaky, func(ctx context.Context, a label) (string, error) {
		en.note(ctx)
		en.mu.Lock()
		fail := en.fails[a.Name]
		en.mu.Unlock()
		if fail {
			return "", retry.Permanent(errors.New("flaky " + a.Name + " failed"))
		}
		return "ok " + a.Name, nil
	})
	worker.Register(w, text, func(ctx context.Context, a label) (string, error) {
		en.note(ctx)
		return workflow.Previous[string](ctx)
	})
	worker.Register(w, block, func(ctx context.Context, a label) (string, error) {
		en.note(ctx)
		en.started <- a.Name
		<-ctx.Done()
		return "", context.Cause(ctx)
	})
	return w
}

// note records that the running step's handler ran.
func (en *env) note(ctx context.Context) {
	_, step, ok := workflow.Current(ctx)
	if !ok {
		en.t.Errorf("a handler ran outside a workflow")
	}
	en.mu.Lock()
	en.ran = append(en.ran, step)
	en.mu.Unlock()
}

func (en *env) ranSteps() []string {
	en.mu.Lock()
	defer en.mu.Unlock()
	return slices.Clone(en.ran)
}

func (en *env) enqueue(root workflow.Node, opts *workflow.Options) string {
	en.t.Helper()
	ref, err := workflow.Enqueue(en.ctx, en.c, root, opts)
	if err != nil {
		en.t.Fatal(err)
	}
	return ref.ID
}

// drain runs every due job and advances, until nothing is left to do.
func (en *env) drain() {
	en.t.Helper()
	if _, err := en.e.WorkDue(en.ctx, en.w); err != nil {
		en.t.Fatal(err)
	}
}

func (en *env) status(id string) *workflow.Info {
	en.t.Helper()
	in, err := workflow.Status(en.ctx, en.c, id)
	if err != nil {
		en.t.Fatal(err)
	}
	return in
}

// states returns each step's state, "name:state".
func states(in *workflow.Info) []string {
	var out []string
	for _, s := range in.Steps {
		out = append(out, s.Name+":"+string(s.State))
	}
	return out
}

func (en *env) wantStates(id string, want workflow.State, steps ...string) *workflow.Info {
	en.t.Helper()
	in := en.status(id)
	if in.State != want || !slices.Equal(states(in), steps) {
		en.t.Fatalf("workflow %s is %s with steps %v; want %s with %v", id, in.State, states(in), want, steps)
	}
	return in
}

func s(name string, n int) *workflow.Step { return workflow.Task(name, sum, num{N: n}, nil) }

// waitFor waits for workflow id to be done and decodes its one exit
// step's result into v.
func (en *env) waitFor(id string, v any) {
	en.t.Helper()
	outs, err := workflow.Wait(en.ctx, en.c, id)
	if err != nil {
		en.t.Fatal(err)
	}
	if len(outs) != 1 {
		en.t.Fatalf("workflow %s has %d exit steps; want 1", id, len(outs))
	}
	if err := outs[0].Decode(v); err != nil {
		en.t.Fatal(err)
	}
}

// A -> B, C -> D: D runs last and receives B's and C's results, each of
// which received A's.
func testDiamond(t *testing.T, en *env) {
	id := en.enqueue(workflow.DAG(s("a", 1), s("b", 10).After("a"), s("c", 100).After("a"), s("d", 1000).After("b", "c")), nil)
	en.drain()
	en.wantStates(id, workflow.Done, "a:done", "b:done", "c:done", "d:done")
	ran := en.ranSteps()
	if len(ran) != 4 || ran[0] != "a" || ran[3] != "d" {
		t.Fatalf("steps ran in order %v; want a first and d last", ran)
	}
	var d int
	if en.waitFor(id, &d); d != 1112 { // 1000 + b(10+1) + c(100+1)
		t.Fatalf("d = %d; want 1112", d)
	}
}

// A chain runs in order, each step given the previous one's result.
func testChain(t *testing.T, en *env) {
	id := en.enqueue(workflow.Chain(s("one", 1), s("two", 2), s("three", 3),
		workflow.Task("last", trace, label{Name: "last"}, nil)), nil)
	en.drain()
	if ran := en.ranSteps(); !slices.Equal(ran, []string{"one", "two", "three", "last"}) {
		t.Fatalf("ran %v", ran)
	}
	var got []string
	en.waitFor(id, &got)
	if !slices.Equal(got, []string{"three=6", "last"}) {
		t.Fatalf("last saw %v; want [three=6 last]", got)
	}
}

// A chain of groups and a chord: each stage waits for the whole previous
// stage and receives its results in the group's order.
func testNested(t *testing.T, en *env) {
	id := en.enqueue(workflow.Chain(
		workflow.Group(s("g1a", 1), s("g1b", 2)),
		workflow.Group(s("g2a", 10), workflow.Chain(s("g2b", 20), s("g2c", 30))),
		workflow.Chord(workflow.Task("cb", trace, label{Name: "cb"}, nil), s("m1", 100), s("m2", 200), s("m3", 300)),
	), nil)
	en.drain()
	// g2a = 10+3, g2b = 20+3, g2c = 30+23; each member = own + 13 + 53.
	var got []string
	en.waitFor(id, &got)
	if want := []string{"m1=166", "m2=266", "m3=366", "cb"}; !slices.Equal(got, want) {
		t.Fatalf("callback saw %v; want %v", got, want)
	}
	pos := map[string]int{}
	for i, r := range en.ranSteps() {
		pos[r] = i
	}
	for _, before := range [][2]string{{"g1a", "g2a"}, {"g1b", "g2b"}, {"g2b", "g2c"}, {"g2c", "m1"}, {"g2a", "m3"}, {"m1", "cb"}, {"m3", "cb"}} {
		if pos[before[0]] > pos[before[1]] {
			t.Errorf("%s ran after %s: %v", before[0], before[1], en.ranSteps())
		}
	}
}

// A workflow with any bad step is refused whole: nothing is stored and no
// job exists.
func testAllOrNothing(t *testing.T, en *env) {
	bad := []struct {
		name string
		root workflow.Node
	}{
		{"unencodable arguments", workflow.Chain(s("a", 1), workflow.Task("bad", unencodable, make(chan int), nil))},
		{"cycle", workflow.DAG(s("a", 1).After("c"), s("b", 2).After("a"), s("c", 3).After("b"))},
		{"unknown dependency", workflow.DAG(s("a", 1), s("b", 2).After("nope"))},
		{"two steps with one name", workflow.Group(s("a", 1), s("a", 2))},
		{"a name with a space", s("a b", 1)},
	}
	for i, c := range bad {
		id := fmt.Sprint("bad-", i)
		_, err := workflow.Enqueue(en.ctx, en.c, c.root, &workflow.Options{ID: id})
		if !errors.Is(err, job.ErrInvalid) && !strings.Contains(fmt.Sprint(err), "encode") {
			t.Errorf("%s: Enqueue returned %v; want a refusal", c.name, err)
		}
		if _, err := workflow.Status(en.ctx, en.c, id); !errors.Is(err, job.ErrNotFound) {
			t.Errorf("%s: Status after the refusal returned %v; want ErrNotFound", c.name, err)
		}
	}
	st, err := en.b.(backends.Inspector).QueueStats(en.ctx, backends.QueueStatsParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, qs := range st {
		if qs.Depth() != 0 {
			t.Fatalf("queue %s holds %v after refused workflows", qs.Queue, qs.Counts)
		}
	}
}

// A dead step cancels its dependents, transitively; siblings finish.
func testDeadCancels(t *testing.T, en *env) {
	en.fails["f"] = true
	id := en.enqueue(workflow.DAG(s("a", 1), workflow.Task("f", flaky, label{Name: "f"}, nil).After("a"),
		s("sib", 2).After("a"), s("after", 3).After("f"), s("end", 4).After("after", "sib")), nil)
	en.drain()
	in := en.wantStates(id, workflow.Failed, "a:done", "f:dead", "sib:done", "after:cancelled", "end:cancelled")
	if in.Steps[3].JobID != "" || !strings.Contains(in.Steps[3].Reason, "f ended dead") {
		t.Fatalf("the cancelled dependent has job %q and reason %q", in.Steps[3].JobID, in.Steps[3].Reason)
	}
	if slices.Contains(en.ranSteps(), "after") || slices.Contains(en.ranSteps(), "end") {
		t.Fatalf("a dependent of the dead step ran: %v", en.ranSteps())
	}
	if _, err := workflow.Wait(en.ctx, en.c, id); !errors.Is(err, workflow.ErrWorkflowFailed) {
		t.Fatalf("Wait returned %v; want ErrWorkflowFailed", err)
	}
}

// A callback allowing failure runs after every member and sees the dead
// member's reason; a step-level allowance applies to that step only.
func testAllowFailure(t *testing.T, en *env) {
	en.fails["m2"] = true
	id := en.enqueue(workflow.Chord(workflow.Task("cb", trace, label{Name: "cb"}, nil).AllowFailure(),
		workflow.Task("m1", flaky, label{Name: "m1"}, nil), workflow.Task("m2", flaky, label{Name: "m2"}, nil)), nil)
	en.drain()
	en.wantStates(id, workflow.Done, "m1:done", "m2:dead", "cb:done")
	var got []string
	en.waitFor(id, &got)
	if want := []string{"m1=ok m1", "m2!dead", "cb"}; !slices.Equal(got, want) {
		t.Fatalf("callback saw %v; want %v", got, want)
	}
	// Per workflow: every step allows failure.
	id2 := en.enqueue(workflow.Chain(workflow.Task("x", flaky, label{Name: "m2"}, nil), workflow.Task("y", trace, label{Name: "y"}, nil)),
		&workflow.Options{AllowFailure: true})
	en.drain()
	en.wantStates(id2, workflow.Done, "x:dead", "y:done")
}

// Cancelling a workflow cancels its waiting steps, and the blocked ones
// never start.
func testCancel(t *testing.T, en *env) {
	id := en.enqueue(workflow.Chain(workflow.Group(s("a", 1), s("b", 2)), s("c", 3)), nil)
	if err := workflow.Cancel(en.ctx, en.c, id); err != nil {
		t.Fatal(err)
	}
	en.drain()
	en.wantStates(id, workflow.Cancelled, "a:cancelled", "b:cancelled", "c:cancelled")
	if ran := en.ranSteps(); len(ran) != 0 {
		t.Fatalf("steps ran after the cancel: %v", ran)
	}
	for _, step := range []string{"a", "b"} {
		rec, err := en.c.Job(en.ctx, workflow.JobID(id, step))
		if err != nil {
			t.Fatal(err)
		}
		if rec.State != job.Cancelled {
			t.Fatalf("job of step %s is %s", step, rec.State)
		}
	}
	if _, err := en.c.Job(en.ctx, workflow.JobID(id, "c")); !errors.Is(err, job.ErrNotFound) {
		t.Fatalf("the blocked step got a job: %v", err)
	}
}

// A dead step replayed runs again and its dependents then run.
func testReplay(t *testing.T, en *env) {
	en.fails["f"] = true
	id := en.enqueue(workflow.Chain(s("a", 1), workflow.Task("f", flaky, label{Name: "f"}, nil),
		workflow.Task("end", trace, label{Name: "end"}, nil)), nil)
	en.drain()
	en.wantStates(id, workflow.Failed, "a:done", "f:dead", "end:cancelled")
	en.mu.Lock()
	en.fails["f"] = false
	en.mu.Unlock()
	if err := workflow.Replay(en.ctx, en.c, id, "f"); err != nil {
		t.Fatal(err)
	}
	en.wantStates(id, workflow.Running, "a:done", "f:enqueued", "end:blocked")
	en.drain()
	en.wantStates(id, workflow.Done, "a:done", "f:done", "end:done")
	if n := strings.Count(strings.Join(en.ranSteps(), " "), "a"); n != 1 {
		t.Fatalf("the finished step ran %d times: %v", n, en.ranSteps())
	}
}

// A step whose job finished without the engine hearing of it (its
// process died between the completion and the advance) is found by the
// reconciler, which releases its dependents.
func testCrashHealed(t *testing.T, en *env) {
	id := en.enqueue(workflow.Chain(s("a", 1), s("b", 2)), nil)
	recs, err := en.b.Reserve(en.ctx, backends.ReserveParams{Queue: q, Limit: 1, Lease: time.Minute, Worker: "crashing"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != workflow.JobID(id, "a") {
		t.Fatalf("reserved %v; want step a's job", recs)
	}
	if err := en.b.Complete(en.ctx, backends.CompleteParams{Lease: recs[0].Lease, Result: []byte("41")}); err != nil {
		t.Fatal(err)
	}
	en.drain() // nothing to run: b is not released yet
	en.wantStates(id, workflow.Running, "a:enqueued", "b:blocked")
	if n, err := en.e.Reconcile(en.ctx); err != nil || n != 1 {
		t.Fatalf("Reconcile changed %d workflows, err %v; want 1", n, err)
	}
	en.drain()
	var got int
	if en.waitFor(id, &got); got != 43 {
		t.Fatalf("b = %d; want 2 + a's 41", got)
	}
	if n, err := en.e.Reconcile(en.ctx); err != nil || n != 0 {
		t.Fatalf("a second Reconcile changed %d workflows, err %v; want none", n, err)
	}
}

// Enqueue with an ID taken returns the workflow as a duplicate, stores
// nothing new, and a workflow left Starting by a dead caller is completed.
func testIdempotent(t *testing.T, en *env) {
	root := workflow.Chain(s("a", 1), s("b", 2))
	ref, err := workflow.Enqueue(en.ctx, en.c, root, &workflow.Options{ID: "order-7"})
	if err != nil || ref.Duplicate {
		t.Fatalf("first Enqueue: %+v, %v", ref, err)
	}
	ref, err = workflow.Enqueue(en.ctx, en.c, root, &workflow.Options{ID: "order-7"})
	if err != nil || !ref.Duplicate || ref.ID != "order-7" {
		t.Fatalf("second Enqueue: %+v, %v; want a duplicate", ref, err)
	}
	en.drain()
	en.wantStates("order-7", workflow.Done, "a:done", "b:done")
	if ran := en.ranSteps(); !slices.Equal(ran, []string{"a", "b"}) {
		t.Fatalf("ran %v", ran)
	}
}

// Started workers and a running engine: Wait returns a chord's results.
func testStarted(t *testing.T, en *env) {
	ctx, cancel := context.WithCancel(en.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = en.e.Run(ctx) }()
	w2 := en.worker() // a second process's worker
	for _, w := range []*worker.Worker{en.w, w2} {
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, w := range []*worker.Worker{en.w, w2} {
			_ = w.Stop(context.Background())
		}
		cancel()
		<-done
	}()
	var members []workflow.Node
	want := 0
	for i := range 20 {
		members = append(members, s(fmt.Sprint("m", i), i))
		want += i
	}
	id := en.enqueue(workflow.Chord(s("total", 0), members...), nil)
	var got int
	if en.waitFor(id, &got); got != want {
		t.Fatalf("total = %d; want %d", got, want)
	}
	if n := strings.Count(" "+strings.Join(en.ranSteps(), " ")+" ", " total "); n != 1 {
		t.Fatalf("the callback ran %d times", n)
	}
}

// A result that does not decode as what the next step reads dead-letters
// that step at once with the reason; its dependents are cancelled.
func testBadResult(t *testing.T, en *env) {
	id := en.enqueue(workflow.Chain(s("n", 1), workflow.Task("t", text, label{}, nil), s("after", 2)), nil)
	en.drain()
	en.wantStates(id, workflow.Failed, "n:done", "t:dead", "after:cancelled")
	rec, err := en.c.Job(en.ctx, workflow.JobID(id, "t"))
	if err != nil {
		t.Fatal(err)
	}
	if le := rec.LastError(); le == nil || !strings.Contains(le.Error, "result of step n") || len(rec.Errors) != 1 {
		t.Fatalf("the step's errors are %+v; want one naming step n's result", rec.Errors)
	}
}

// Cancelling a workflow whose step runs cancels the handler's context;
// the step after it never starts.
func testCancelRunning(t *testing.T, en *env) {
	ctx, cancel := context.WithCancel(en.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = en.e.Run(ctx) }()
	if err := en.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = en.w.Stop(context.Background())
		cancel()
		<-done
	}()
	id := en.enqueue(workflow.Chain(workflow.Task("long", block, label{Name: "long"}, nil), s("next", 1)), nil)
	select {
	case <-en.started:
	case <-en.ctx.Done():
		t.Fatal("the step never started")
	}
	if err := workflow.Cancel(en.ctx, en.c, id); err != nil {
		t.Fatal(err)
	}
	if _, err := workflow.Wait(en.ctx, en.c, id); !errors.Is(err, workflow.ErrWorkflowFailed) {
		t.Fatalf("Wait returned %v; want ErrWorkflowFailed", err)
	}
	en.wantStates(id, workflow.Cancelled, "long:cancelled", "next:cancelled")
	if slices.Contains(en.ranSteps(), "next") {
		t.Fatal("the step after the cancelled one ran")
	}
}

// A chord of 1,000 members: the callback runs once, after all of them,
// with every result in order.
func testLarge(t *testing.T, en *env) {
	const n = 1000
	members := make([]workflow.Node, n)
	want := 0
	for i := range n {
		members[i] = s(fmt.Sprint("m", i), i)
		want += i
	}
	id := en.enqueue(workflow.Chord(s("total", 0), members...), nil)
	en.drain()
	var got int
	if en.waitFor(id, &got); got != want {
		t.Fatalf("total = %d; want %d", got, want)
	}
	if ran := en.ranSteps(); len(ran) != n+1 || ran[n] != "total" {
		t.Fatalf("%d steps ran, the last %q; want %d and the callback last", len(ran), ran[len(ran)-1], n+1)
	}
}

// BeginTx begins a transaction on b in the form b's EnqueueTx takes.
type BeginTx func(t *testing.T, b backends.Backend) (tx any, commit, rollback func() error)

// RunTx runs the transactional cases on a backends.TxEnqueuer (Prepare,
// then Prepared.EnqueueTx, as SQLite needs): a workflow
// enqueued in a transaction that commits runs whole; one whose
// transaction rolls back never runs, and its record is deleted after the
// engine's TxGrace.
func RunTx(t *testing.T, open Opener, begin BeginTx) {
	t.Run("CommittedTxRuns", func(t *testing.T) {
		t.Parallel()
		en := newEnv(t, open)
		p, err := workflow.Prepare(en.ctx, en.c, workflow.Chain(s("a", 1), s("b", 2)), nil)
		if err != nil {
			t.Fatal(err)
		}
		tx, commit, _ := begin(t, en.b)
		ref, err := p.EnqueueTx(en.ctx, tx)
		if err != nil {
			t.Fatal(err)
		}
		if err := commit(); err != nil {
			t.Fatal(err)
		}
		en.drain()
		var got int
		if en.waitFor(ref.ID, &got); got != 3 {
			t.Fatalf("b = %d; want 3", got)
		}
	})
	t.Run("RolledBackTxNeverRuns", func(t *testing.T) {
		t.Parallel()
		clock := &fakeClock{t: time.Now()}
		en := newEnvAt(t, open, clock)
		p, err := workflow.Prepare(en.ctx, en.c, workflow.Chain(s("a", 1), s("b", 2)), nil)
		if err != nil {
			t.Fatal(err)
		}
		tx, _, rollback := begin(t, en.b)
		ref, err := p.EnqueueTx(en.ctx, tx)
		if err != nil {
			t.Fatal(err)
		}
		if err := rollback(); err != nil {
			t.Fatal(err)
		}
		en.drain()
		if _, err := en.e.Reconcile(en.ctx); err != nil {
			t.Fatal(err)
		}
		en.wantStates(ref.ID, workflow.Starting, "a:blocked", "b:blocked")
		clock.add(2 * time.Hour) // past the default TxGrace of 1h
		if _, err := en.e.Reconcile(en.ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := workflow.Status(en.ctx, en.c, ref.ID); !errors.Is(err, job.ErrNotFound) {
			t.Fatalf("Status after TxGrace returned %v; want ErrNotFound", err)
		}
		if ran := en.ranSteps(); len(ran) != 0 {
			t.Fatalf("steps of a rolled-back workflow ran: %v", ran)
		}
	})
}

// fakeClock is the engine's injected clock: the case moves it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
