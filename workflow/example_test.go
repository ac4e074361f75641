package workflow_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
	"github.com/conveyorhq/conveyor/workflow"
)

// The image pipeline's tasks, defined as any task is: nothing about them
// says workflow.
type ResizeArgs struct {
	URL   string `json:"url"`
	Width int    `json:"width"`
}

type ZipArgs struct {
	Name string `json:"name"`
}

type EmailArgs struct {
	To string `json:"to"`
}

var (
	Resize = queue.NewTask[ResizeArgs, string]("images.resize", queue.TaskOptions{Queue: "images"})
	Zip    = queue.NewTask[ZipArgs, string]("images.zip", queue.TaskOptions{Queue: "images"})
	Email  = queue.NewTask[EmailArgs, string]("images.email", queue.TaskOptions{Queue: "images"})
)

// setup returns a client, an engine, and a worker with the engine
// installed and the pipeline's handlers registered, on a memory backend.
func setup() (*queue.Client, *workflow.Engine, *worker.Worker) {
	b := membackend.New(membackend.Config{})
	c := queue.NewClient(b, queue.Config{})
	eng, err := workflow.NewEngine(c, workflow.Config{})
	if err != nil {
		panic(err)
	}
	w := worker.New(b, eng.Install(worker.Config{Queues: []worker.QueueConfig{{Name: "images"}}, Concurrency: 1}))
	worker.Register(w, Resize, func(ctx context.Context, a ResizeArgs) (string, error) {
		return fmt.Sprintf("%s@%d", a.URL, a.Width), nil
	})
	// Zip takes whatever the steps before it made: a chord's members, a
	// chain's previous step.
	worker.Register(w, Zip, func(ctx context.Context, a ZipArgs) (string, error) {
		files, err := workflow.All[string](ctx)
		if err != nil {
			return "", err
		}
		return a.Name + ".zip[" + strings.Join(files, " ") + "]", nil
	})
	worker.Register(w, Email, func(ctx context.Context, a EmailArgs) (string, error) {
		link, err := workflow.Previous[string](ctx)
		if err != nil {
			return "", err
		}
		return "sent " + link + " to " + a.To, nil
	})
	return c, eng, w
}

// run enqueues root, drains the worker and the engine, and prints the
// workflow's result.
func run(c *queue.Client, eng *workflow.Engine, w *worker.Worker, root workflow.Node) {
	ctx := context.Background()
	ref, err := workflow.Enqueue(ctx, c, root, nil)
	if err != nil {
		panic(err)
	}
	if _, err := eng.WorkDue(ctx, w); err != nil { // a started worker and eng.Run do this in production
		panic(err)
	}
	outs, err := workflow.Wait(ctx, c, ref.ID)
	if err != nil {
		panic(err)
	}
	for _, o := range outs {
		var s string
		if err := o.Decode(&s); err != nil {
			panic(err)
		}
		fmt.Printf("%s: %s\n", o.Step, s)
	}
}

func resize(step, url string) *workflow.Step {
	return workflow.Task(step, Resize, ResizeArgs{URL: url, Width: 64}, nil)
}

// A chain runs its steps one after the other; each gets the previous
// step's result (Previous).
func ExampleChain() {
	c, eng, w := setup()
	run(c, eng, w, workflow.Chain(
		resize("resize", "/cat.png"),
		workflow.Task("zip", Zip, ZipArgs{Name: "cat"}, nil),
		workflow.Task("email", Email, EmailArgs{To: "ann@example.com"}, nil),
	))
	// Output:
	// email: sent cat.zip[/cat.png@64] to ann@example.com
}

// A group runs its members in parallel; what follows receives their
// results in the group's order, whichever finished first.
func ExampleGroup() {
	c, eng, w := setup()
	run(c, eng, w, workflow.Group(resize("small", "/a.png"), resize("big", "/b.png")))
	// Output:
	// small: /a.png@64
	// big: /b.png@64
}

// A chord is a group and then a callback that receives every member's
// result: resize 3 images, zip them, then email the link.
func ExampleChord() {
	c, eng, w := setup()
	run(c, eng, w, workflow.Chain(
		workflow.Chord(workflow.Task("zip", Zip, ZipArgs{Name: "album"}, nil),
			resize("r1", "/1.png"), resize("r2", "/2.png"), resize("r3", "/3.png")),
		workflow.Task("email", Email, EmailArgs{To: "ann@example.com"}, nil),
	))
	// Output:
	// email: sent album.zip[/1.png@64 /2.png@64 /3.png@64] to ann@example.com
}

// A DAG draws its edges with After: a diamond, the zip receiving both
// resizes, which both follow the first.
func ExampleDAG() {
	c, eng, w := setup()
	run(c, eng, w, workflow.DAG(
		resize("first", "/0.png"),
		resize("left", "/l.png").After("first"),
		resize("right", "/r.png").After("first"),
		workflow.Task("zip", Zip, ZipArgs{Name: "pair"}, nil).After("left", "right"),
	))
	// Output:
	// zip: pair.zip[/l.png@64 /r.png@64]
}

// EnqueueMany stores many workflows in the round trips of one, all or
// nothing: an album per user, each its own workflow with its own ID.
func ExampleEnqueueMany() {
	c, eng, w := setup()
	ctx := context.Background()
	var reqs []workflow.Request
	for _, user := range []string{"ann", "bob"} {
		reqs = append(reqs, workflow.Request{
			Root: workflow.Chain(
				resize("resize", "/"+user+".png"),
				workflow.Task("zip", Zip, ZipArgs{Name: user}, nil),
			),
			Options: &workflow.Options{ID: "album-" + user},
		})
	}
	refs, err := workflow.EnqueueMany(ctx, c, reqs...)
	if err != nil {
		panic(err)
	}
	if _, err := eng.WorkDue(ctx, w); err != nil {
		panic(err)
	}
	for _, ref := range refs {
		outs, err := workflow.Wait(ctx, c, ref.ID)
		if err != nil {
			panic(err)
		}
		var zip string
		if err := outs[0].Decode(&zip); err != nil {
			panic(err)
		}
		fmt.Printf("%s: %s\n", ref.ID, zip)
	}
	// Output:
	// album-ann: ann.zip[/ann.png@64]
	// album-bob: bob.zip[/bob.png@64]
}
