package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/conveyorhq/conveyor/internal/demo"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/workflow"
)

// inspect workflow prints the whole and each step with what it waits for;
// an unknown ID fails naming it.
func TestInspectWorkflow(t *testing.T) {
	db, b := newDB(t)
	greet := func(step string) *workflow.Step {
		return workflow.Task(step, demo.Greet, demo.GreetArgs{Name: step}, nil)
	}
	ref, err := workflow.Enqueue(context.Background(), queue.NewClient(b, queue.Config{}), workflow.Chain(greet("hello"), greet("goodbye")), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := ok(t, "inspect", "workflow", ref.ID, "--db", db)
	for _, want := range []string{"workflow " + ref.ID + ": running, 2 steps", "hello", "goodbye  demo.greet  hello", "blocked"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect workflow does not print %q:\n%s", want, out)
		}
	}
	fails(t, 1, []string{"inspect", "workflow", "nope", "--db", db}, "workflow nope")
}
