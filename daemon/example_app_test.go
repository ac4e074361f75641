package daemon

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/conveyorhq/conveyor/examples/app/tasks"
)

// The example app's own worker binary is daemon.Main: built from its
// module, it runs the app's jobs from a config file and drains on SIGTERM.
func TestExampleAppWorker(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "app-worker")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../examples/app/cmd/worker"
	// A module of its own, joined to this one by its replace directives.
	build.Env = append(build.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	db := newDB(t)
	cfg := filepath.Join(t.TempDir(), "worker.toml")
	writeTo(t, cfg, "db = \""+db.path+"\"\nqueues = [\"email:4\"]\nbreakers = [\"smtp:10:1m\"]\nlog-format = \"json\"\n")
	if err := CheckConfig(cfg); err != nil {
		t.Fatal(err)
	}
	w := start(t, bin, nil, "-config", cfg)
	w.wait(`"msg":"worker started"`, `"queues":"email:4"`)
	h, err := tasks.SendWelcome.Enqueue(t.Context(), db.client, tasks.WelcomeArgs{UserID: 7, Email: "a@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	allDone(t, db.waitFinished(t, h.ID))
	w.wait("sending welcome email")
	w.stop()
}
