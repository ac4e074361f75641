package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// inspect limits lists what the live workers declare with their use, sets
// an override every worker applies, and removes it; a bad one is a usage
// error.
func TestInspectLimits(t *testing.T) {
	db, b := newDB(t)
	ctx := context.Background()
	task := queue.NewTask[struct{}, queue.None]("cli.limited", queue.TaskOptions{Queue: "lq",
		ConcurrencyLimit: &flow.ConcurrencyLimit{Limit: 2}})
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "lq", RateLimit: &flow.RateLimit{Limit: 100, Per: time.Minute}}}})
	worker.Register(w, task, func(context.Context, struct{}) (queue.None, error) { return queue.None{}, nil })
	if err := w.Start(ctx); err != nil { // announces its limits at once
		t.Fatal(err)
	}
	defer w.Stop(ctx)

	out := ok(t, "inspect", "limits", "--db", db)
	for _, want := range []string{"LIMIT", "cli.limited  concurrency  2 at once", "queue:lq     rate         100/1m0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect limits does not print %q:\n%s", want, out)
		}
	}
	out = ok(t, "inspect", "limits", "rate:queue:lq=5/1m:10", "--db", db)
	if !strings.Contains(out, "override rate:queue:lq=5/1m0s:10 set") {
		t.Fatalf("setting an override printed %q", out)
	}
	var views []dashboard.LimitView
	if err := json.Unmarshal([]byte(ok(t, "inspect", "limits", "--json", "--db", db)), &views); err != nil {
		t.Fatal(err)
	}
	if len(views) != 2 || views[1].Name != "queue:lq" || views[1].Override == nil || views[1].Override.Limit != 5 || views[1].Override.Burst != 10 {
		t.Fatalf("inspect limits --json after the override: %+v", views)
	}
	if out := ok(t, "inspect", "limits", "--db", db); !strings.Contains(out, "5/1m0s burst 10, set") {
		t.Fatalf("inspect limits does not show the override:\n%s", out)
	}
	ok(t, "inspect", "limits", "rate:queue:lq", "reset", "--db", db)
	ovs, err := flow.Overrides(ctx, b)
	if err != nil || len(ovs) != 0 {
		t.Fatalf("overrides after the reset: %+v, %v", ovs, err)
	}
	fails(t, 2, []string{"inspect", "limits", "rate:queue:lq=fast", "--db", db}, "LIMIT is not a whole number")
	fails(t, 2, []string{"inspect", "limits", "speed:x", "reset", "--db", db}, "KIND rate or concurrency")
}

// inspect workers shows the fair queues each worker serves, with their
// groups' weights, in the fair key's form.
func TestInspectWorkersShowsFairQueues(t *testing.T) {
	db, b := newDB(t)
	ctx := context.Background()
	w := worker.New(b, worker.Config{ID: "fair-worker", Queues: []worker.QueueConfig{{Name: "plain"},
		{Name: "exports", Fair: true, FairWeights: map[string]int{"big": 3, "acme": 2}}, {Name: "reports", Fair: true}}})
	worker.Register(w, queue.NewTask[struct{}, queue.None]("cli.fair", queue.TaskOptions{Queue: "exports"}),
		func(context.Context, struct{}) (queue.None, error) { return queue.None{}, nil })
	if err := w.Start(ctx); err != nil { // announces itself at once
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	out := ok(t, "inspect", "workers", "--db", db)
	if !strings.Contains(out, "FAIR") || !strings.Contains(out, "plain,exports,reports  exports:acme=2:big=3,reports ") {
		t.Fatalf("inspect workers:\n%s", out)
	}
}
