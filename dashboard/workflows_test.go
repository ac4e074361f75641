package dashboard_test

import (
	"context"
	"testing"

	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/workflow"
)

// A workflow's page reads its steps, their dependencies and states, and
// cancels it.
func TestWorkflowView(t *testing.T) {
	ctx := context.Background()
	b := openSQLite(t)
	c := queue.NewClient(b, queue.Config{})
	step := func(name string) *workflow.Step {
		return workflow.Task(name, sendMail, mailArgs{To: name + "@example.com"}, nil)
	}
	ref, err := workflow.Enqueue(ctx, c, workflow.Chain(step("first"), step("second")), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, dashboard.Config{Backend: b})
	var v dashboard.WorkflowView
	call(t, srv, "GET", "/api/workflows/"+ref.ID, "", 200, &v)
	if v.ID != ref.ID || len(v.Steps) != 2 {
		t.Fatalf("workflow view = %+v", v)
	}
	first, second := v.Steps[0], v.Steps[1]
	if first.Name != "first" || first.JobID == "" || len(first.Deps) != 0 ||
		second.Name != "second" || second.State != workflow.StepBlocked || len(second.Deps) != 1 || second.Deps[0] != "first" {
		t.Fatalf("steps = %+v", v.Steps)
	}
	var list []dashboard.WorkflowSummary
	call(t, srv, "GET", "/api/workflows?state=running", "", 200, &list)
	if len(list) != 1 || list[0].ID != ref.ID || list[0].Steps[workflow.StepBlocked] != 1 {
		t.Fatalf("running workflows = %+v", list)
	}
	call(t, srv, "GET", "/api/workflows?state=done", "", 200, &list)
	if len(list) != 0 {
		t.Fatalf("done workflows = %+v", list)
	}
	call(t, srv, "POST", "/api/workflows/"+ref.ID+"/cancel", "", 200, &v, "Content-Type", "application/json")
	if !v.CancelRequested && v.State != workflow.Cancelled {
		t.Fatalf("after cancel: %+v", v)
	}
	call(t, srv, "GET", "/api/workflows/no-such-workflow", "", 404, nil)
}
