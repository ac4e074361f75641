package daemon

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/conveyorhq/conveyor/daemon/testdata/tasks"
)

func dbEnv(db *testDB) []string { return []string{"CONVEYOR_DB=" + db.path} }

// Bad configuration ends the process at once: one line naming the key
// or URL, a non-zero exit, no panic.
func TestBadConfigExitsWithOneLine(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	file := func(text string) string {
		p := filepath.Join(dir, strings.Fields(text)[0]+".toml")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"-config", file("concurency = 3\n")}, `unknown key "concurency"`},
		{"wrong type", []string{"-config", file("lease = 30\n")}, `key lease: want a string`},
		{"missing file", []string{"-config", filepath.Join(dir, "missing.toml")}, `missing.toml: no such file`},
		{"unreachable backend", []string{"-db", "redis://:secret@127.0.0.1:1/0"}, `backend redis://:xxxxx@127.0.0.1:1/0: `},
		{"unknown scheme", []string{"-db", "mongodb://x"}, `backend mongodb://x: `},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, bin, nil, tc.args...)
			if code := p.exitCode(); code == 0 {
				t.Errorf("exit code 0")
			}
			lines := p.lines()
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr %q, want one line with %q", lines, tc.want)
			}
		})
	}
}

// SIGTERM with 20 running 2 s jobs and a 1 s drain: they are cancelled,
// released, and a second worker runs them at once, long before their
// 60 s lease would have let it; nothing is lost.
func TestSIGTERMDrainReleasesToAnotherWorker(t *testing.T) {
	bin := binary(t)
	db := newDB(t)
	a := start(t, bin, dbEnv(db), "-concurrency", "20", "-drain", "1s", "-lease", "60s", "-http", "127.0.0.1:0")
	addr := strings.TrimPrefix(regexp.MustCompile(`addr=\S+`).FindString(a.wait("serving /healthz")), "addr=")
	ids := enqueue(t, db, tasks.Sleep, tasks.SleepArgs{Ms: 2000}, 20)
	a.waitN(20, "job running")
	for _, path := range []string{"/healthz", "/readyz"} {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", path, res.Status)
		}
	}
	b := start(t, bin, dbEnv(db), "-concurrency", "20")
	b.wait("worker started")
	a.signal(syscall.SIGTERM)
	a.wait("drain timeout: cancelling and releasing the running jobs")
	if code := a.exitCode(); code != 0 {
		t.Errorf("the drained worker exited %d", code)
	}
	if n := a.count("job cancelled", "worker shutting down"); n != 20 {
		t.Errorf("%d jobs cancelled by the drain, want 20", n)
	}
	// The waits end well within the lease: the jobs were released, not
	// left to expire.
	b.waitN(20, "job running")
	allDone(t, db.waitFinished(t, ids...))
	if n := b.count("job done"); n != 20 {
		t.Errorf("the second worker finished %d jobs, want 20", n)
	}
}

// SIGHUP after editing concurrency from 2 to 8: 8 jobs run at once, none
// lost or run twice; a malformed edit is refused and the old config keeps
// running.
func TestSIGHUPReloadsConcurrency(t *testing.T) {
	bin := binary(t)
	db := newDB(t)
	cfgPath := filepath.Join(t.TempDir(), "worker.toml")
	write := func(text string) {
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("concurrency = 2\n")
	w := start(t, bin, dbEnv(db), "-config", cfgPath)
	w.wait("worker started", "concurrency=2")
	ids := enqueue(t, db, tasks.Sleep, tasks.SleepArgs{Ms: 1500}, 24)
	w.waitN(2, "job running")
	if w.count("running=3") != 0 {
		t.Fatal("3 jobs ran at once under concurrency 2")
	}
	write("concurrency = 8\n")
	w.signal(syscall.SIGHUP)
	w.wait("reload: applied", "key=concurrency", "from=2", "to=8")
	w.wait("job running", "running=8")

	write("concurrency = \"lots\"\n")
	w.signal(syscall.SIGHUP)
	w.wait("reload refused", "key concurrency: want an integer")
	allDone(t, db.waitFinished(t, ids...))
	for _, id := range ids {
		if n := w.count("job done", "job="+id); n != 1 {
			t.Errorf("job %s ran to the end %d times", id, n)
		}
	}
	w.stop()
}

// After SIGTSTP the worker starts no new job while its running ones
// finish, and a second worker takes the queue.
func TestSIGTSTPQuiet(t *testing.T) {
	bin := binary(t)
	db := newDB(t)
	a := start(t, bin, dbEnv(db), "-concurrency", "2")
	a.wait("worker started")
	ids := enqueue(t, db, tasks.Sleep, tasks.SleepArgs{Ms: 1500}, 6)
	a.waitN(2, "job running")
	a.signal(syscall.SIGTSTP)
	a.wait("quiet: no new jobs")
	b := start(t, bin, dbEnv(db), "-concurrency", "4")
	allDone(t, db.waitFinished(t, ids...))
	if n := a.count("job done"); n != 2 {
		t.Errorf("the quiet worker finished %d jobs, want the 2 it had", n)
	}
	if n := b.count("job done"); n != 4 {
		t.Errorf("the second worker finished %d jobs, want 4", n)
	}
	// Quiet, the process lives on until it is stopped.
	a.stop()
}

// Every failed attempt and dead letter reaches App.OnError.
func TestOnErrorHearsFailures(t *testing.T) {
	bin := binary(t)
	db := newDB(t)
	w := start(t, bin, dbEnv(db), "-slow-job", "200ms")
	w.wait("worker started")
	ids := enqueue(t, db, tasks.Fail, struct{}{}, 1)
	slow := enqueue(t, db, tasks.Sleep, tasks.SleepArgs{Ms: 600}, 1)
	w.wait("error report", "job="+ids[0], "attempt=1", "dead=true", "always fails")
	w.wait("slow job", "job="+slow[0])
	db.waitFinished(t, append(ids, slow...)...)
}
