package cli_test

import (
	"encoding/json"
	"testing"

	"github.com/conveyorhq/conveyor/daemon/cli"
	"github.com/conveyorhq/conveyor/scheduler"
)

func TestSchedule(t *testing.T) {
	db, _ := newDB(t)
	ok(t, "schedule", "add", "nightly", "0 3 * * *", "demo.greet", `{"name":"ops"}`, "--db", db, "--misfire", "once")
	fails(t, cli.ExitError, []string{"schedule", "add", "--db", db, "nightly", "0 4 * * *", "demo.greet", `{}`}, `periodic task exists: "nightly" (--replace to replace it)`)
	fails(t, cli.ExitError, []string{"schedule", "add", "--db", db, "broken", "0 4 * * *", "demo.greet", `{"name":`}, "malformed payload")
	fails(t, cli.ExitError, []string{"schedule", "add", "--db", db, "typo", "0 4 * * *", "demo.gret", `{}`}, `unknown task "demo.gret"`)
	fails(t, cli.ExitError, []string{"schedule", "add", "--db", db, "bad", "61 * * * *", "demo.greet", `{}`}, "invalid request")
	ok(t, "schedule", "add", "--db", db, "--replace", "nightly", "0 4 * * *", "demo.greet", `{"name":"ops"}`)

	var list []scheduler.EntryState
	if err := json.Unmarshal([]byte(ok(t, "schedule", "list", "--db", db, "--json")), &list); err != nil ||
		len(list) != 1 || list[0].Schedule != "0 4 * * *" || list[0].Misfire != scheduler.Skip {
		t.Fatalf("schedule list --json after --replace: %v, %+v", err, list)
	}
	if out := ok(t, "schedule", "pause", "nightly", "--db", db); out != "paused nightly\n" {
		t.Fatalf("pause: %q", out)
	}
	if out := ok(t, "schedule", "list", "--db", db); !hasLine(out, "nightly", "0", "4", "*", "*", "*", "demo.greet", "skip", "true") {
		t.Fatalf("schedule list after pause:\n%s", out)
	}
	for _, verb := range []string{"pause", "resume", "remove"} {
		fails(t, cli.ExitError, []string{"schedule", verb, "nigthly", "--db", db}, `unknown periodic task "nigthly"`, "nightly")
	}
	ok(t, "schedule", "remove", "nightly", "--db", db)
	if out := ok(t, "schedule", "list", "--db", db, "--json"); out != "[]\n" {
		t.Fatalf("schedule list after remove: %q", out)
	}
}
