package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/daemon/testdata/tasks"
	"github.com/conveyorhq/conveyor/flow"
)

// The limits key overrides a limit for every worker and a reload changes
// it without a restart: the sleep task, which declares no limit, runs at
// most 2 at once under concurrency:test.sleep=2 (with room for 8), then 5
// after SIGHUP with =5, never 6; a reload that no longer lists it removes
// the override. Counted by the handlers, as each job starts.
func TestLimitsKeyReloads(t *testing.T) {
	bin := binary(t)
	db := newDB(t)
	cfg := filepath.Join(t.TempDir(), "worker.toml")
	writeTo(t, cfg, "concurrency = 8\nlimits = [\"concurrency:test.sleep=2\"]\n")
	w := start(t, bin, dbEnv(db), "-config", cfg)
	w.wait("limit override set on every worker", `limit="concurrency:test.sleep=2"`)
	w.wait("worker started")
	ids := enqueue(t, db, tasks.Sleep, tasks.SleepArgs{Ms: 1000}, 16)
	w.waitN(2, "job running")
	if w.count("running=3") != 0 {
		t.Fatal("3 jobs ran at once under an override of 2")
	}
	writeTo(t, cfg, "concurrency = 8\nlimits = [\"concurrency:test.sleep=5\"]\n")
	w.signal(syscall.SIGHUP)
	w.wait("reload: applied", "key=limits", `to="concurrency:test.sleep=5"`)
	w.wait("job running", "running=5")
	allDone(t, db.waitFinished(t, ids...))
	if w.count("running=6") != 0 {
		t.Fatal("6 jobs ran at once under an override of 5")
	}
	writeTo(t, cfg, "concurrency = 8\n")
	w.signal(syscall.SIGHUP)
	w.wait("limit override removed", "limit=concurrency:test.sleep")
	ovs, err := flow.Overrides(context.Background(), db.b.(backends.Backend))
	if err != nil || len(ovs) != 0 {
		t.Fatalf("overrides after the reload without limits: %+v, %v", ovs, err)
	}
	w.stop()
}

func TestParseLimits(t *testing.T) {
	got, err := parseLimits("rate:queue:email=100/1m:20, concurrency:shopify.sync=3")
	if err != nil || formatLimits(got) != "rate:queue:email=100/1m0s:20,concurrency:shopify.sync=3" {
		t.Fatalf("parseLimits = %v, %v", got, err)
	}
	for in, want := range map[string]string{
		"rate:x=1/s,rate:x=2/s": "listed twice",
		"speed:x=1":             `kind "speed" is neither`,
		"rate:x":                "no KIND: or =",
	} {
		if _, err := parseLimits(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseLimits(%q) = %v, want an error with %q", in, err, want)
		}
	}
}
