package workflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// failingSteps is a memory backend whose enqueues of step jobs fail with
// err from the failAt-th call on (counting from 1), until failAt is reset
// to 0. Its second such call runs hook first, if set.
type failingSteps struct {
	*membackend.Backend
	calls  atomic.Int64
	failAt atomic.Int64
	err    error
	hook   func()
}

func (b *failingSteps) Enqueue(ctx context.Context, p backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	if len(p.Jobs) > 0 && p.Jobs[0].Headers[HeaderWorkflow] != "" {
		n := b.calls.Add(1)
		if n == 2 && b.hook != nil {
			b.hook()
		}
		if b.failAt.Load() > 0 && n >= b.failAt.Load() {
			return nil, b.err
		}
	}
	return b.Backend.Enqueue(ctx, p)
}

// wideChord is a chord of n members of step and a callback that sums
// them: more than one enqueue batch when n is past enqueueBatch.
func wideChord(n int) (Node, int) {
	members := make([]Node, n)
	want := 0
	for i := range n {
		members[i] = Task(fmt.Sprint("m", i), step, nArgs{i}, nil)
		want += i
	}
	return Chord(Task("sum", sumStep, nArgs{}, nil), members...), want
}

var sumStep = queue.NewTask[nArgs, int]("workflow.internal.sum", queue.TaskOptions{Queue: "wf"})

// registerSum has w run sumStep: the sum of its dependencies' results.
func registerSum(w *worker.Worker) {
	worker.Register(w, sumStep, func(ctx context.Context, _ nArgs) (int, error) {
		results, err := All[int](ctx)
		total := 0
		for _, r := range results {
			total += r
		}
		return total, err
	})
}

// fillRig is a failingSteps backend with its client, an engine on a
// clock the test moves, and a worker that runs step and sumStep.
type fillRig struct {
	b     *failingSteps
	c     *queue.Client
	e     *Engine
	w     *worker.Worker
	clock *backendtest.Clock
}

func newFillRig(t *testing.T, err error, cfg queue.Config) *fillRig {
	t.Helper()
	b := &failingSteps{Backend: membackend.New(membackend.Config{}), err: err}
	c := queue.NewClient(b, cfg)
	clock := &backendtest.Clock{}
	e, nerr := NewEngine(c, Config{Clock: clock})
	if nerr != nil {
		t.Fatal(nerr)
	}
	w := worker.New(b, e.Install(worker.Config{
		Queues: []worker.QueueConfig{{Name: "wf"}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	worker.Register(w, step, func(_ context.Context, a nArgs) (int, error) { return a.N, nil })
	registerSum(w)
	return &fillRig{b: b, c: c, e: e, w: w, clock: clock}
}

// finish runs every due job and returns the callback's result.
func (f *fillRig) finish(t *testing.T, id string) int {
	t.Helper()
	ctx := context.Background()
	if _, err := f.e.WorkDue(ctx, f.w); err != nil {
		t.Fatal(err)
	}
	outs, err := Wait(ctx, f.c, id)
	if err != nil || len(outs) != 1 {
		t.Fatalf("workflow %s: %d outputs, %v; want the callback's", id, len(outs), err)
	}
	var got int
	if err := outs[0].Decode(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

func (f *fillRig) record(t *testing.T, id string) *record {
	t.Helper()
	r, _, err := f.e.s.load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A group past one enqueue batch starts filled: all of it runs, and the
// callback gets every result.
func TestFilledStartRunsEveryMember(t *testing.T) {
	f := newFillRig(t, nil, queue.Config{})
	root, want := wideChord(2*enqueueBatch + 500)
	ref, err := Enqueue(context.Background(), f.c, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.b.calls.Load(); n != 3 {
		t.Fatalf("the start made %d enqueue calls; want 3, a batch each", n)
	}
	if r := f.record(t, ref.ID); r.Filling {
		t.Fatal("the record is still Filling after Enqueue returned")
	}
	if got := f.finish(t, ref.ID); got != want {
		t.Fatalf("sum = %d; want %d", got, want)
	}
}

// A fill that dies midway (a batch's outcome unknown) leaves the record
// Filling; the reconciler leaves it to its Enqueue within StartGrace and
// enqueues the rest past it, and the workflow then completes.
func TestReconcilerRefillsAStartThatDiedFilling(t *testing.T) {
	ctx := context.Background()
	f := newFillRig(t, errors.New("connection reset"), queue.Config{})
	root, want := wideChord(2*enqueueBatch + 500)
	f.b.failAt.Store(2)
	_, err := Enqueue(ctx, f.c, root, &Options{ID: "filling"})
	if !errors.Is(err, job.ErrOutcomeUnknown) {
		t.Fatalf("Enqueue returned %v; want ErrOutcomeUnknown", err)
	}
	f.b.failAt.Store(0)
	if r := f.record(t, "filling"); !r.Filling || r.State != Running {
		t.Fatalf("record %s, filling %v; want running and filling", r.State, r.Filling)
	}
	last := JobID("filling", fmt.Sprint("m", 2*enqueueBatch+499))
	if _, err := f.c.Job(ctx, last); !errors.Is(err, job.ErrNotFound) {
		t.Fatalf("the last member's job: %v; want not enqueued yet", err)
	}
	if _, err := f.e.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Job(ctx, last); !errors.Is(err, job.ErrNotFound) {
		t.Fatalf("a fill within its grace was touched: %v", err)
	}
	f.clock.Advance(2 * time.Minute)
	if _, err := f.e.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if r := f.record(t, "filling"); r.Filling {
		t.Fatal("the record is still Filling after the refill")
	}
	if got := f.finish(t, "filling"); got != want {
		t.Fatalf("sum = %d; want %d", got, want)
	}
}

// A later batch refused as invalid (only a bound set meanwhile, or a
// backend's own rule, can do that) kills its steps with the reason, as a
// refusal at run time does; the callback is cancelled, nothing else is
// lost, and Enqueue still succeeds: the workflow is stored.
func TestFillRefusedLaterKillsThoseSteps(t *testing.T) {
	ctx := context.Background()
	f := newFillRig(t, fmt.Errorf("%w: no more", job.ErrInvalid), queue.Config{})
	root, _ := wideChord(enqueueBatch + 10)
	f.b.failAt.Store(2)
	ref, err := Enqueue(ctx, f.c, root, nil)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	f.b.failAt.Store(0)
	if _, err := f.e.WorkDue(ctx, f.w); err != nil {
		t.Fatal(err)
	}
	in, err := Status(ctx, f.c, ref.ID)
	if err != nil {
		t.Fatal(err)
	}
	dead, done := 0, 0
	for _, st := range in.Steps {
		switch {
		case st.State == StepDead && strings.Contains(st.Reason, "no more"):
			dead++
		case st.State == StepDone:
			done++
		}
	}
	if in.State != Failed || dead != 10 || done != enqueueBatch || in.Steps[len(in.Steps)-1].State != StepCancelled {
		t.Fatalf("workflow %s, %d dead with the reason, %d done, callback %s; want failed, 10, %d, cancelled",
			in.State, dead, done, in.Steps[len(in.Steps)-1].State, enqueueBatch)
	}
}

// A later batch met by a full queue leaves its steps blocked; the next
// advance enqueues them, and the workflow completes.
func TestFillMetByAFullQueueEnqueuesLater(t *testing.T) {
	ctx := context.Background()
	f := newFillRig(t, fmt.Errorf("%w: for now", job.ErrQueueFull), queue.Config{})
	root, want := wideChord(enqueueBatch + 10)
	f.b.failAt.Store(2)
	ref, err := Enqueue(ctx, f.c, root, nil)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	f.b.failAt.Store(0)
	if got := f.finish(t, ref.ID); got != want {
		t.Fatalf("sum = %d; want %d", got, want)
	}
}

// A Cancel while the start fills cannot cancel the jobs not in yet: the
// fill cancels them when it is done, and no member runs.
func TestCancelWhileFilling(t *testing.T) {
	ctx := context.Background()
	f := newFillRig(t, nil, queue.Config{})
	root, _ := wideChord(enqueueBatch + 10)
	f.b.hook = func() { // after the first batch, before the second
		if err := Cancel(ctx, f.c, "cancelled"); err != nil {
			t.Errorf("Cancel: %v", err)
		}
	}
	if _, err := Enqueue(ctx, f.c, root, &Options{ID: "cancelled"}); err != nil {
		t.Fatal(err)
	}
	if n, err := f.e.WorkDue(ctx, f.w); err != nil || n != 0 {
		t.Fatalf("%d jobs ran (%v); want none", n, err)
	}
	in, err := Status(ctx, f.c, "cancelled")
	if err != nil || in.State != Cancelled {
		t.Fatalf("status %+v, %v; want cancelled", in, err)
	}
	for _, st := range in.Steps {
		if st.State != StepCancelled {
			t.Fatalf("step %s is %s; want cancelled", st.Name, st.State)
		}
	}
}

// A start into a queue with a bound (here the code's) goes in one call, all or nothing: a
// batch past the first could meet the bound the first did not.
func TestBoundedQueueStartsInOneCall(t *testing.T) {
	ctx := context.Background()
	f := newFillRig(t, nil, queue.Config{Queues: []*queue.Queue{queue.NewQueue("wf", queue.QueueOptions{MaxDepth: 100_000})}})
	root, want := wideChord(enqueueBatch + 10)
	ref, err := Enqueue(ctx, f.c, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.b.calls.Load(); n != 1 {
		t.Fatalf("the start made %d enqueue calls; want 1", n)
	}
	if got := f.finish(t, ref.ID); got != want {
		t.Fatalf("sum = %d; want %d", got, want)
	}
}
