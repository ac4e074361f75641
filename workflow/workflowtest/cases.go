package workflowtest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/workflow"
)

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
	// First steps refused by a full queue refuse the workflow whole.
	small := queue.NewQueue("wf-small", queue.QueueOptions{MaxDepth: 1})
	bounded := queue.NewClient(en.b, queue.Config{Queues: []*queue.Queue{small}})
	into := &queue.EnqueueOptions{Queue: small.Name()}
	_, err := workflow.Enqueue(en.ctx, bounded, workflow.Chain(workflow.Group(
		workflow.Task("a", sum, num{}, into), workflow.Task("b", sum, num{}, into)), s("c", 1)), &workflow.Options{ID: "too-big"})
	if !errors.Is(err, job.ErrQueueFull) {
		t.Errorf("Enqueue into a full queue returned %v; want ErrQueueFull", err)
	}
	if _, err := workflow.Status(en.ctx, en.c, "too-big"); !errors.Is(err, job.ErrNotFound) {
		t.Errorf("Status after the refusal returned %v; want ErrNotFound", err)
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
	defer en.start(2)() // two processes' workers
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
	defer en.start(1)()
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

// A chord of 2,500 members, more than one enqueue batch (so its start
// fills): the callback runs once, after all of them, with every result in
// order.
func testLarge(t *testing.T, en *env) {
	const n = 2500
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

// Steps added to a running workflow before its callback (a Sidekiq batch
// that grows) are waited for and passed to it; a finished workflow takes
// no more.
func testAdd(t *testing.T, en *env) {
	id := en.enqueue(workflow.Chord(workflow.Task("cb", trace, label{Name: "cb"}, nil), s("m1", 1)), nil)
	if err := workflow.Add(en.ctx, en.c, id, workflow.Group(s("m2", 2), s("m3", 3)), &workflow.AddOptions{Before: []string{"cb"}}); err != nil {
		t.Fatal(err)
	}
	en.drain()
	var got []string
	if en.waitFor(id, &got); !slices.Equal(got, []string{"m1=1", "m2=2", "m3=3", "cb"}) {
		t.Fatalf("callback saw %v", got)
	}
	err := workflow.Add(en.ctx, en.c, id, s("late", 4), nil)
	if !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("Add to a finished workflow returned %v; want ErrInvalid", err)
	}
}
