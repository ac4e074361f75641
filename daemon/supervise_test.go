package daemon

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/conveyorhq/conveyor/daemon/testdata/tasks"
)

var pidRe = regexp.MustCompile(`slot="worker (\d)/\d" pid=(\d+)`)

// SIGKILL of a supervised worker process: the supervisor logs the exit,
// starts a replacement, and the killed process's jobs run again once
// their (short) lease ends.
func TestSupervisorReplacesKilledChild(t *testing.T) {
	bin := binary(t)
	db := newDB(t)
	s := start(t, bin, dbEnv(db), "-processes", "2", "-concurrency", "2", "-lease", "2s", "-queues", "default,email")
	s.waitN(2, "worker started")
	ids := enqueue(t, db, tasks.Sleep, tasks.SleepArgs{Ms: 1000}, 4)
	s.waitN(4, "job running")
	m := pidRe.FindStringSubmatch(s.wait("worker process started", `slot="worker 1/2"`))
	pid, _ := strconv.Atoi(m[2])
	if out, err := exec.Command("ps", "-o", "args=", "-p", m[2]).Output(); err != nil || !regexp.MustCompile(`^testworker: worker 1/2 queues=default,email`).Match(out) {
		t.Errorf("ps names the process %q (%v)", out, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.wait("worker process died; restarting it", `slot="worker 1/2"`, "signal: killed")
	s.waitN(2, "worker process started", `slot="worker 1/2"`)
	allDone(t, db.waitFinished(t, ids...))
	s.stop()
	if n := s.count("worker process ended"); n != 2 {
		t.Errorf("%d worker processes ended with the supervisor, want 2", n)
	}
}

// A worker process past max-jobs drains and is replaced; no job is lost.
func TestSupervisorRecyclesAfterMaxJobs(t *testing.T) {
	bin := binary(t)
	db := newDB(t)
	s := start(t, bin, dbEnv(db), "-processes", "1", "-max-jobs", "3", "-concurrency", "1")
	s.wait("worker started")
	ids := enqueue(t, db, tasks.Sleep, tasks.SleepArgs{Ms: 10}, 7)
	s.waitN(2, "worker process recycled; starting its replacement")
	allDone(t, db.waitFinished(t, ids...))
	if n := s.count("stopped", "max-jobs 3"); n < 2 {
		t.Errorf("%d processes stopped for max-jobs, want 2", n)
	}
}

// A handler that leaks memory past max-rss gets its process recycled.
func TestSupervisorRecyclesPastMaxRSS(t *testing.T) {
	bin := binary(t)
	db := newDB(t)
	cfg := filepath.Join(t.TempDir(), "w.toml")
	writeTo(t, cfg, "processes = 1\nmax-rss = \"64MiB\"\n")
	s := start(t, bin, dbEnv(db), "-config", cfg)
	s.wait("worker started")
	ids := enqueue(t, db, tasks.Leak, tasks.LeakArgs{MiB: 96}, 1)
	s.wait("stopped", "past max-rss 64 MiB")
	s.wait("worker process recycled; starting its replacement")
	allDone(t, db.waitFinished(t, ids...))
	s.waitN(2, "worker started")
}
