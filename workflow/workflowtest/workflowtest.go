package workflowtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
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
		{"EnqueueManyStartsEveryWorkflow", testEnqueueMany},
		{"EnqueueManyIsAllOrNothing", testEnqueueManyAllOrNothing},
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
		{"BatchGrowsWhileItRuns", testAdd},
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
	en.w = en.worker(0) // WorkDue runs no heartbeats: the default lease, long enough for a slow machine
	return en
}

// start starts n workers and the engine's Run, and returns what stops
// them. Their leases are short, so that heartbeats, which carry cancel
// requests, come every second.
func (en *env) start(n int) (stop func()) {
	ctx, cancel := context.WithCancel(en.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = en.e.Run(ctx) }()
	var ws []*worker.Worker
	for range n {
		w := en.worker(3 * time.Second)
		if err := w.Start(ctx); err != nil {
			en.t.Fatal(err)
		}
		ws = append(ws, w)
	}
	return func() {
		for _, w := range ws {
			_ = w.Stop(context.Background())
		}
		cancel()
		<-done
	}
}

func (en *env) worker(lease time.Duration) *worker.Worker {
	w := worker.New(en.b, en.e.Install(worker.Config{
		Queues: []worker.QueueConfig{{Name: q}}, Concurrency: 4, LeaseDuration: lease,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), QuietFailedAttempts: true,
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
