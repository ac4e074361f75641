package daemon

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// waitLong bounds every wait on a process: far above what any step
// takes, it only turns a hang into a failure.
const waitLong = 20 * time.Second

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binary builds the tests' worker binary (testdata/worker) once.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "daemon-test")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "testworker"), "./testdata/worker").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "testworker")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// daemonProc is a worker binary running under test, its log lines kept.
type daemonProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	cond *sync.Cond
	logs []string
	eof  bool
	done chan struct{}
}

// start runs bin with args and env (on top of this process's, without
// any CONVEYOR_* of its own).
func start(t *testing.T, bin string, env []string, args ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONVEYOR_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{t: t, cmd: cmd, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs = append(p.logs, sc.Text())
			p.cond.Broadcast()
			p.mu.Unlock()
		}
		p.mu.Lock()
		p.eof = true
		p.cond.Broadcast()
		p.mu.Unlock()
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("log of %s:\n%s", bin, strings.Join(p.lines(), "\n"))
		}
	})
	return p
}

func (p *daemonProc) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logs...)
}

// count is how many log lines contain every one of subs.
func (p *daemonProc) count(subs ...string) int {
	n := 0
	for _, l := range p.lines() {
		if containsAll(l, subs) {
			n++
		}
	}
	return n
}

func containsAll(l string, subs []string) bool {
	for _, s := range subs {
		if !strings.Contains(l, s) {
			return false
		}
	}
	return true
}

// waitN waits until n log lines contain all of subs and returns the nth.
func (p *daemonProc) waitN(n int, subs ...string) string {
	p.t.Helper()
	timer := time.AfterFunc(waitLong, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(waitLong)
	p.mu.Lock()
	for {
		seen := 0
		for _, l := range p.logs {
			if containsAll(l, subs) {
				if seen++; seen == n {
					p.mu.Unlock()
					return l
				}
			}
		}
		if p.eof || time.Now().After(deadline) {
			eof := p.eof
			p.mu.Unlock() // before Fatalf, which never returns
			p.t.Fatalf("waited for %d log lines with %q; saw %d (process ended: %v)", n, subs, seen, eof)
		}
		p.cond.Wait()
	}
}

func (p *daemonProc) wait(subs ...string) string { p.t.Helper(); return p.waitN(1, subs...) }

func (p *daemonProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// stop sends SIGTERM and expects a clean exit after the drain.
func (p *daemonProc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != 0 {
		p.t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

// exitCode waits for the process to end.
func (p *daemonProc) exitCode() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitLong):
		p.t.Fatal("the process did not end")
	}
	return p.cmd.ProcessState.ExitCode()
}

// testDB is a SQLite file with a client on it.
type testDB struct {
	path   string
	b      interface{ Close() error }
	client *queue.Client
}

func newDB(t *testing.T) *testDB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jobs.db")
	b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return &testDB{path: path, b: b, client: queue.NewClient(b, queue.Config{})}
}

func enqueue[A, R any](t *testing.T, db *testDB, task *queue.Task[A, R], args A, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		h, err := task.Enqueue(context.Background(), db.client, args, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = h.ID
	}
	return ids
}

// waitFinished waits until every job has finished and returns its final
// states by ID.
func (db *testDB) waitFinished(t *testing.T, ids ...string) map[string]job.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	out := map[string]job.State{}
	for _, id := range ids {
		rec, err := db.client.WaitFinished(ctx, id)
		if err != nil {
			t.Fatalf("job %s: %v", id, err)
		}
		out[id] = rec.State
	}
	return out
}

func allDone(t *testing.T, states map[string]job.State) {
	t.Helper()
	for id, s := range states {
		if s != job.Done {
			t.Errorf("job %s ended %s, want done", id, s)
		}
	}
}

func writeTo(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
