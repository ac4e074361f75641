package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/conveyorhq/conveyor/daemon/cli"
	"github.com/conveyorhq/conveyor/internal/demo"
	"github.com/conveyorhq/conveyor/worker"
)

func TestEnqueueChecksTaskAndArgs(t *testing.T) {
	db, _ := newDB(t)
	fails(t, cli.ExitError, []string{"enqueue", "--db", db, "no.such.task", `{}`}, `unknown task "no.such.task"`, "demo.greet")
	fails(t, cli.ExitError, []string{"enqueue", "--db", db, "demo.greet", `{"name":`}, "malformed payload")
	fails(t, cli.ExitUsage, []string{"enqueue", "--db", db, "demo.greet"}, "accepts 2 arg(s)")
	if out := ok(t, "enqueue", "--db", db, "--unique", "k", "demo.greet", `{}`); strings.Contains(out, "duplicate") {
		t.Fatalf("first job of a key: %q", out)
	}
	if out := ok(t, "enqueue", "--db", db, "--unique", "k", "demo.greet", `{}`); !strings.Contains(out, "duplicate") {
		t.Fatalf("second job of a key: %q", out)
	}
}

// enqueue --wait prints a done job's result, a dead job's last error,
// and when no worker runs the job, says so once --timeout has passed.
func TestEnqueueWait(t *testing.T) {
	db, b := newDB(t)
	r := runCLI(context.Background(), "enqueue", "--db", db, "--wait", "--timeout", "300ms", "demo.greet", `{"name":"ada"}`)
	if r.code != cli.ExitError || !strings.Contains(r.errOut, "waiting up to 300ms for job") ||
		!strings.Contains(r.errOut, "is still pending after 300ms: no worker has started it; is one running on queue default") {
		t.Fatalf("wait with no worker: exit %d\n%s%s", r.code, r.out, r.errOut)
	}

	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "default"}, {Name: "payments"}}})
	demo.Register(w, nil)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	if out := ok(t, "enqueue", "--db", db, "--wait", "--timeout", "0", "demo.greet", `{"name":"ada"}`); !strings.Contains(out, `done {"greeting":"hello, ada"}`) {
		t.Fatalf("wait for a greeting: %q", out)
	}
	errOut := fails(t, cli.ExitError, []string{"enqueue", "--db", db, "--wait", "demo.charge", `{"cents":5,"card":"declined"}`},
		"is dead after 1 attempts", demo.ErrDeclined.Error())
	if !strings.Contains(errOut, "job did not succeed") {
		t.Fatalf("dead job: %q", errOut)
	}
}
