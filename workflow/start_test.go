package workflow

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

type nArgs struct{ N int }

var step = queue.NewTask[nArgs, int]("workflow.internal.step", queue.TaskOptions{Queue: "wf"})

func chainOfTwo() Node {
	return Chain(Task("a", step, nArgs{1}, nil), Task("b", step, nArgs{2}, nil))
}

// halfStarted stores a workflow's record as an Enqueue that died right
// after writing it would leave it: Starting, no job enqueued.
func halfStarted(t *testing.T, c *queue.Client, id string) {
	t.Helper()
	s, r, err := prepare(c, chainOfTwo(), &Options{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.markOpen(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := s.putSpec(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if _, err := s.save(context.Background(), r, 0); err != nil {
		t.Fatal(err)
	}
}

// open lists the workflows marked unfinished.
func open(t *testing.T, c *queue.Client) []string {
	t.Helper()
	kvs, err := c.Backend().(backends.KVStore).ListKV(context.Background(), backends.ListKVParams{Prefix: openPrefix})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, kv := range kvs {
		ids = append(ids, kv.Key[len(openPrefix):])
	}
	return ids
}

// clocked returns a client on a memory backend and an engine on a clock
// the test moves.
func clocked(t *testing.T) (*queue.Client, *Engine, *backendtest.Clock) {
	t.Helper()
	c := queue.NewClient(membackend.New(membackend.Config{}), queue.Config{})
	clock := &backendtest.Clock{}
	e, err := NewEngine(c, Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return c, e, clock
}

func jobState(t *testing.T, c *queue.Client, id string) job.State {
	t.Helper()
	rec, err := c.Job(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rec.State
}

// The reconciler leaves a fresh Starting record to its Enqueue call and
// completes one past StartGrace.
func TestReconcilerCompletesAHalfDoneStart(t *testing.T) {
	ctx := context.Background()
	c, e, clock := clocked(t)
	halfStarted(t, c, "w1")
	if _, err := e.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Job(ctx, JobID("w1", "a")); !errors.Is(err, job.ErrNotFound) {
		t.Fatalf("a start within its grace was touched: %v", err)
	}
	clock.Advance(2 * time.Minute)
	if _, err := e.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if st := jobState(t, c, JobID("w1", "a")); st != job.Pending {
		t.Fatalf("the first step's job is %s", st)
	}
	in, err := Status(ctx, c, "w1")
	if err != nil || in.State != Running {
		t.Fatalf("status %+v, %v; want running", in, err)
	}
}

// An Enqueue retried with the ID of a half-done start completes it and
// answers with a duplicate: still one workflow.
func TestEnqueueRetryCompletesAHalfDoneStart(t *testing.T) {
	ctx := context.Background()
	c := queue.NewClient(membackend.New(membackend.Config{}), queue.Config{})
	halfStarted(t, c, "w2")
	ref, err := Enqueue(ctx, c, chainOfTwo(), &Options{ID: "w2"})
	if err != nil || !ref.Duplicate {
		t.Fatalf("Enqueue: %+v, %v; want a duplicate", ref, err)
	}
	if st := jobState(t, c, JobID("w2", "a")); st != job.Pending {
		t.Fatalf("the first step's job is %s", st)
	}
}

// A step whose job vanished (deleted, or pruned before any engine saw it
// finish) is marked dead with the reason; its dependents are cancelled.
func TestReconcilerFailsAStepWhoseJobIsGone(t *testing.T) {
	ctx := context.Background()
	b := membackend.New(membackend.Config{})
	c := queue.NewClient(b, queue.Config{})
	e, err := NewEngine(c, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Enqueue(ctx, c, chainOfTwo(), &Options{ID: "w3"}); err != nil {
		t.Fatal(err)
	}
	if ids := open(t, c); len(ids) != 1 || ids[0] != "w3" {
		t.Fatalf("open workflows %v; want [w3]", ids)
	}
	if _, err := b.DeleteJobs(ctx, backends.DeleteJobsParams{IDs: []string{JobID("w3", "a")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	in, err := Status(ctx, c, "w3")
	if err != nil {
		t.Fatal(err)
	}
	if in.State != Failed || in.Steps[0].State != StepDead || in.Steps[0].Reason == "" || in.Steps[1].State != StepCancelled {
		t.Fatalf("status %+v; want failed, a dead with a reason, b cancelled", in)
	}
	if ids := open(t, c); len(ids) != 0 {
		t.Fatalf("a failed workflow is still marked open: %v", ids)
	}
}

// A marker whose record never came (its Enqueue died between the two
// writes) is deleted past StartGrace.
func TestReconcilerDropsAMarkerWithoutARecord(t *testing.T) {
	ctx := context.Background()
	c, e, clock := clocked(t)
	if err := e.s.markOpen(ctx, "w4"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reconcile(ctx); err != nil || len(open(t, c)) != 1 {
		t.Fatalf("a fresh marker was dropped (%v)", err)
	}
	clock.Advance(2 * time.Minute)
	if _, err := e.Reconcile(ctx); err != nil || len(open(t, c)) != 0 {
		t.Fatalf("a stale marker was kept: %v (%v)", open(t, c), err)
	}
}

// List returns the kept workflows, filtered by state.
func TestListByState(t *testing.T) {
	ctx := context.Background()
	c, e, _ := clocked(t)
	for _, id := range []string{"l1", "l2"} {
		if _, err := Enqueue(ctx, c, chainOfTwo(), &Options{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := Cancel(ctx, c, "l2"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := List(ctx, c)
	if err != nil || len(all) != 2 {
		t.Fatalf("List: %d, %v; want 2", len(all), err)
	}
	running, err := List(ctx, c, Running)
	if err != nil || len(running) != 1 || running[0].ID != "l1" {
		t.Fatalf("List(Running): %+v, %v; want l1", running, err)
	}
}
