package workflowtest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/workflow"
)

// EnqueueMany starts every workflow of the batch, its refs in the
// batch's order; one whose ID is taken is a duplicate, run once.
func testEnqueueMany(t *testing.T, en *env) {
	taken := en.enqueue(workflow.Chain(s("a", 1), s("b", 2)), &workflow.Options{ID: "taken"})
	const n = 50
	var reqs []workflow.Request
	for i := range n {
		reqs = append(reqs, workflow.Request{Root: workflow.Chain(s("a", i), s("b", 1)), Options: &workflow.Options{ID: fmt.Sprint("many-", i)}})
		if i == n/2 {
			reqs = append(reqs, workflow.Request{Root: workflow.Chain(s("a", 1), s("b", 2)), Options: &workflow.Options{ID: taken}})
		}
	}
	reqs = append(reqs, workflow.Request{Root: s("solo", 7)}) // an ID made up
	refs, err := workflow.EnqueueMany(en.ctx, en.c, reqs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != len(reqs) {
		t.Fatalf("EnqueueMany returned %d refs for %d requests", len(refs), len(reqs))
	}
	for i, ref := range refs {
		if id := reqs[i].Options; id != nil && ref.ID != id.ID {
			t.Fatalf("ref %d is %q; want %q", i, ref.ID, id.ID)
		}
		if ref.Duplicate != (ref.ID == taken) {
			t.Fatalf("ref %d (%s) has Duplicate %v", i, ref.ID, ref.Duplicate)
		}
	}
	en.drain()
	for i := range n {
		id := fmt.Sprint("many-", i)
		en.wantStates(id, workflow.Done, "a:done", "b:done")
		var b int
		if en.waitFor(id, &b); b != i+1 {
			t.Fatalf("%s's last step gave %d; want %d", id, b, i+1)
		}
	}
	en.wantStates(taken, workflow.Done, "a:done", "b:done")
	en.wantStates(refs[len(refs)-1].ID, workflow.Done, "solo:done")
	if ran, want := len(en.ranSteps()), 2*n+2+1; ran != want {
		t.Fatalf("%d steps ran; want %d (the duplicate's once)", ran, want)
	}
}

// A batch with one request that cannot be built, two requests with one
// ID, or first steps a full queue refuses, stores none of its workflows.
func testEnqueueManyAllOrNothing(t *testing.T, en *env) {
	good := func(id string) workflow.Request {
		return workflow.Request{Root: workflow.Chain(s("a", 1), s("b", 2)), Options: &workflow.Options{ID: id}}
	}
	small := queue.NewQueue("wf-small", queue.QueueOptions{MaxDepth: 2})
	bounded := queue.NewClient(en.b, queue.Config{Queues: []*queue.Queue{small}})
	into := &queue.EnqueueOptions{Queue: small.Name()}
	overflow := func(id string) workflow.Request {
		return workflow.Request{Root: workflow.Task("a", sum, num{}, into), Options: &workflow.Options{ID: id}}
	}
	for _, c := range []struct {
		name string
		c    *queue.Client
		reqs []workflow.Request
		want error
	}{
		{"a cycle", en.c, []workflow.Request{good("c-1"), {Root: workflow.DAG(s("a", 1).After("b"), s("b", 1).After("a")), Options: &workflow.Options{ID: "c-2"}}, good("c-3")}, job.ErrInvalid},
		{"one ID twice", en.c, []workflow.Request{good("d-1"), good("d-2"), good("d-1")}, job.ErrInvalid},
		{"a full queue", bounded, []workflow.Request{overflow("f-1"), overflow("f-2"), overflow("f-3")}, job.ErrQueueFull},
	} {
		if _, err := workflow.EnqueueMany(en.ctx, c.c, c.reqs...); !errors.Is(err, c.want) {
			t.Errorf("%s: EnqueueMany returned %v; want %v", c.name, err, c.want)
		}
		for _, r := range c.reqs {
			if _, err := workflow.Status(en.ctx, en.c, r.Options.ID); !errors.Is(err, job.ErrNotFound) {
				t.Errorf("%s: Status of %s after the refusal returned %v; want ErrNotFound", c.name, r.Options.ID, err)
			}
		}
	}
	st, err := en.b.(backends.Inspector).QueueStats(en.ctx, backends.QueueStatsParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, qs := range st {
		if qs.Depth() != 0 {
			t.Fatalf("queue %s holds %v after refused batches", qs.Queue, qs.Counts)
		}
	}
	// No record, spec or open marker is left behind either.
	kvs, err := en.b.(backends.KVStore).ListKV(en.ctx, backends.ListKVParams{Prefix: "workflow"})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		t.Errorf("key %s is stored after refused batches", kv.Key)
	}
}
