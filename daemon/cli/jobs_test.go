package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/daemon/cli"
	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/internal/demo"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// enqueue enqueues a greeting and returns its ID.
func enqueue(t *testing.T, db, name string) string {
	t.Helper()
	return strings.TrimSpace(ok(t, "enqueue", "--db", db, "demo.greet", `{"name":"`+name+`"}`))
}

func TestJobsListShowAndJSON(t *testing.T) {
	db, _ := newDB(t)
	id := enqueue(t, db, "ada")
	ok(t, "enqueue", "--db", db, "--queue", "payments", "demo.charge", `{"cents":5,"card":"ok"}`)

	out := ok(t, "jobs", "list", "--db", db, "--queue", "default", "--state", "pending")
	if !hasLine(out, id, "default", "demo.greet", "pending") || strings.Contains(out, "demo.charge") {
		t.Fatalf("jobs list --queue default --state pending:\n%s", out)
	}
	var page dashboard.JobPage
	if err := json.Unmarshal([]byte(ok(t, "jobs", "list", "--db", db, "--json")), &page); err != nil || len(page.Jobs) != 2 {
		t.Fatalf("jobs list --json: %v, %+v", err, page)
	}
	if out := ok(t, "jobs", "list", "--db", db, "--state", "done"); strings.Count(out, "\n") != 1 {
		t.Fatalf("no job is done, yet:\n%s", out)
	}
	if out := ok(t, "jobs", "list", "--db", db, "--state", "pending", "--limit", "1"); !strings.Contains(out, "more: --cursor ") {
		t.Fatalf("a limited listing of one state prints no cursor:\n%s", out)
	}

	// The job's arguments decoded, as the dashboard shows them.
	out = ok(t, "jobs", "show", id, "--db", db)
	if !strings.Contains(out, `"name": "ada"`) || !hasLine(out, "state:", "pending") || !hasLine(out, "task:", "demo.greet") {
		t.Fatalf("jobs show:\n%s", out)
	}
	var v dashboard.JobView
	var args demo.GreetArgs
	if err := json.Unmarshal([]byte(ok(t, "inspect", "job", id, "--db", db, "--json")), &v); err != nil ||
		v.ID != id || json.Unmarshal(v.Args, &args) != nil || args.Name != "ada" {
		t.Fatalf("inspect job --json: %v, %+v", err, v)
	}
	fails(t, cli.ExitError, []string{"jobs", "show", "nope", "--db", db}, "job nope: job not found")
}

func TestJobsCancelDeletePurge(t *testing.T) {
	db, b := newDB(t)
	a, c, d := enqueue(t, db, "a"), enqueue(t, db, "b"), enqueue(t, db, "c")
	if out := ok(t, "jobs", "cancel", a, "--db", db); !hasLine(out, a, "cancelled") {
		t.Fatalf("jobs cancel: %q", out)
	}
	fails(t, cli.ExitError, []string{"jobs", "cancel", "nope", "--db", db}, "job nope")
	fails(t, cli.ExitError, []string{"jobs", "delete", c, "nope", "--db", db}, "job nope: job not found")
	if _, err := b.(backends.Inspector).GetJob(context.Background(), backends.GetJobParams{ID: c}); err == nil {
		t.Fatalf("job %s was not deleted beside the unknown one", c)
	}

	// Purge wants states, a known queue, and deletes only those states.
	fails(t, cli.ExitUsage, []string{"jobs", "purge", "default", "--db", db}, "--state is required")
	fails(t, cli.ExitUsage, []string{"jobs", "purge", "default", "--state", "running", "--db", db}, "never purged")
	fails(t, cli.ExitError, []string{"jobs", "purge", "defualt", "--state", "cancelled", "--db", db}, `unknown queue "defualt"`)
	if out := ok(t, "jobs", "purge", "default", "--state", "cancelled,dead", "--db", db); out != "purged 1\n" {
		t.Fatalf("purge: %q", out)
	}
	if out := ok(t, "jobs", "list", "--db", db); !strings.Contains(out, d) || strings.Contains(out, a) {
		t.Fatalf("after purging the cancelled job:\n%s", out)
	}
}

// Replaying names each job it did not replay, and why.
func TestReplay(t *testing.T) {
	db, _ := newDB(t)
	id := enqueue(t, db, "ada")
	fails(t, cli.ExitError, []string{"inspect", "replay", "nope", "--db", db}, "job nope: job not found")
	fails(t, cli.ExitError, []string{"jobs", "replay", id, "--db", db}, "it is pending; only dead or cancelled jobs are replayed")
	ok(t, "jobs", "cancel", id, "--db", db)
	if out := ok(t, "jobs", "replay", id, "--db", db); out != "replayed 1\n" {
		t.Fatalf("replay of a cancelled job: %q", out)
	}
	fails(t, cli.ExitError, []string{"inspect", "replay-all", "paymnets", "--db", db}, `unknown queue "paymnets"`)
	if out := ok(t, "inspect", "replay-all", "payments", "--db", db); out != "replayed 0\n" {
		t.Fatalf("replay-all of a queue of the app's tasks: %q", out)
	}
}

// Pausing a misspelled queue fails and leaves no phantom queue; a queue
// one of the app's tasks names can be paused before it has jobs.
func TestPauseUnknownQueue(t *testing.T) {
	db, b := newDB(t)
	enqueue(t, db, "ada")
	fails(t, cli.ExitError, []string{"inspect", "pause", "defualt", "--db", db}, `unknown queue "defualt"`, "queues: default, payments")
	stats, err := b.(backends.Inspector).QueueStats(context.Background(), backends.QueueStatsParams{})
	if err != nil || len(stats) != 1 || stats[0].Queue != "default" {
		t.Fatalf("queues after pausing a misspelled one: %+v, %v", stats, err)
	}
	if out := ok(t, "inspect", "pause", "payments", "--db", db); out != "payments paused\n" {
		t.Fatalf("pause: %q", out)
	}
	if out := ok(t, "inspect", "queues", "--db", db); !hasLine(out, "payments", "true") {
		t.Fatalf("inspect queues after pausing payments:\n%s", out)
	}
	ok(t, "inspect", "resume", "payments", "--db", db)
	var views []dashboard.QueueView
	if err := json.Unmarshal([]byte(ok(t, "inspect", "queues", "--db", db, "--json")), &views); err != nil || len(views) == 0 {
		t.Fatalf("inspect queues --json: %v, %+v", err, views)
	}
	for _, v := range views {
		if v.Paused {
			t.Fatalf("queue %s still paused after resume", v.Queue)
		}
	}
}

// An operator changes a queue's bound without a deploy: the app's client
// obeys the stored bound, and `inspect bound` shows who set it.
func TestInspectBound(t *testing.T) {
	ctx := context.Background()
	db, b := newDB(t)
	app := queue.NewClient(b, queue.Config{Queues: []*queue.Queue{queue.NewQueue("default", queue.QueueOptions{MaxDepth: 1})}})
	if _, err := demo.Greet.Enqueue(ctx, app, demo.GreetArgs{Name: "a"}, nil); err != nil {
		t.Fatal(err)
	}
	ok(t, "inspect", "--db", db, "bound", "default", "2")
	app = queue.NewClient(b, queue.Config{Queues: []*queue.Queue{queue.NewQueue("default", queue.QueueOptions{MaxDepth: 1})}})
	if _, err := demo.Greet.Enqueue(ctx, app, demo.GreetArgs{Name: "b"}, nil); err != nil {
		t.Fatalf("enqueue after the operator raised the bound to 2: %v", err)
	}
	if out := ok(t, "inspect", "--db", db, "bound"); !hasLine(out, "default", "2", "reject", "operator") {
		t.Fatalf("inspect bound shows %q, want the operator's 2", out)
	}
	ok(t, "inspect", "--db", db, "bound", "default", "reset")
	if out := ok(t, "inspect", "bound", "--db", db, "--json"); !strings.Contains(out, `"set_by": "code"`) {
		t.Fatalf("after reset: %q; want the code's bound in force", out)
	}
	fails(t, cli.ExitUsage, []string{"inspect", "--db", db, "bound", "default", "many"}, `"many" is not a number of jobs`)
	fails(t, cli.ExitError, []string{"inspect", "--db", db, "bound", "defualt", "3"}, `unknown queue "defualt"`)
	if _, err := demo.Greet.Enqueue(ctx, app, demo.GreetArgs{Name: "c"}, nil); err == nil || !strings.Contains(err.Error(), job.ErrQueueFull.Error()) {
		t.Fatalf("enqueue past the code's bound once the operator's is reset: %v", err)
	}
}
