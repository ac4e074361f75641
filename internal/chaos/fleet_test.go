package chaos_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/worker"
)

// member is one worker the chaos loop can kill or freeze.
type member struct {
	name   string
	kill   func()              // SIGKILL, or cut an in-process worker off its backend
	freeze func(time.Duration) // SIGSTOP for that long, or stall its backend calls
	term   func()              // a clean stop at the end of the run
}

// fleet keeps minWorkers workers alive and remembers what was done to
// each, by the name it writes in the ledger.
type fleet struct {
	mu    sync.Mutex
	live  []*member
	fate  map[string]string // worker -> "killed" or "stopped"
	spawn func() *member
}

const minWorkers = 3

func newFleet(spawn func() *member) *fleet {
	f := &fleet{fate: map[string]string{}, spawn: spawn}
	for range minWorkers {
		f.live = append(f.live, spawn())
	}
	return f
}

// killOne kills a random worker and starts its replacement.
func (f *fleet) killOne() {
	f.mu.Lock()
	i := rand.IntN(len(f.live))
	m := f.live[i]
	f.live = append(f.live[:i], f.live[i+1:]...)
	f.fate[m.name] = "killed"
	f.mu.Unlock()
	m.kill()
	n := f.spawn()
	f.mu.Lock()
	f.live = append(f.live, n)
	f.mu.Unlock()
}

// freezeOne stops a random worker for longer than its lease; it resumes
// and finds its leases taken.
func (f *fleet) freezeOne() {
	f.mu.Lock()
	m := f.live[rand.IntN(len(f.live))]
	if f.fate[m.name] == "" {
		f.fate[m.name] = "stopped"
	}
	f.mu.Unlock()
	m.freeze(lease + time.Second)
}

func (f *fleet) fateOf(who string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fate[who]
}

// shutdown stops the live workers cleanly, all at once.
func (f *fleet) shutdown() {
	f.mu.Lock()
	live := f.live
	f.live = nil
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range live {
		wg.Go(m.term)
	}
	wg.Wait()
}

// processSpawner starts worker processes: the test binary again, with
// stderr to a log file of its own (which the corruption checks read) and
// env added to its environment (CONVEYOR_CHAOS_MODE=chord: a chord worker).
func processSpawner(t *testing.T, sp spec, ledger, logs string, env ...string) func() *member {
	js, err := json.Marshal(sp)
	if err != nil {
		t.Fatal(err)
	}
	return func() *member {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "CONVEYOR_CHAOS_WORKER=1", "CONVEYOR_CHAOS_SPEC="+string(js), "CONVEYOR_CHAOS_LEDGER="+ledger)
		cmd.Env = append(cmd.Env, env...)
		logf, err := os.CreateTemp(logs, "worker-*.log")
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		cmd.Stderr = logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Named as the ledger names the worker, so a job's runs and its log lines meet.
		_ = os.Rename(logf.Name(), filepath.Join(logs, fmt.Sprintf("worker-p%d.log", cmd.Process.Pid)))
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
		sig := func(s syscall.Signal) { _ = cmd.Process.Signal(s) }
		return &member{
			name: fmt.Sprintf("p%d", cmd.Process.Pid),
			kill: func() { sig(syscall.SIGKILL); <-exited },
			freeze: func(d time.Duration) {
				sig(syscall.SIGSTOP)
				time.AfterFunc(d, func() { sig(syscall.SIGCONT) })
			},
			term: func() {
				sig(syscall.SIGCONT)
				sig(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(30 * time.Second):
					sig(syscall.SIGKILL) // reported as duplicates, not hidden
					<-exited
				}
			},
		}
	}
}

// severable is an in-process worker's view of a shared backend that the
// test can cut (the worker is "killed": every call fails, as a dead
// process's would never arrive) or stall (the worker is "stopped": calls
// wait, as a SIGSTOPped process's would). It hides the backend's optional
// capabilities, so the worker polls.
type severable struct {
	backends.Backend
	dead  atomic.Bool
	until atomic.Int64 // UnixNano: calls wait until then
}

var errKilled = errors.New("chaos: worker killed")

func (s *severable) gate() error {
	time.Sleep(time.Until(time.Unix(0, s.until.Load())))
	if s.dead.Load() {
		return errKilled
	}
	return nil
}

func (s *severable) Reserve(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	return s.Backend.Reserve(ctx, p)
}

func (s *severable) Extend(ctx context.Context, p backends.ExtendParams) ([]backends.ExtendResult, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	return s.Backend.Extend(ctx, p)
}

func (s *severable) Complete(ctx context.Context, p backends.CompleteParams) error {
	return s.then(func() error { return s.Backend.Complete(ctx, p) })
}

func (s *severable) Retry(ctx context.Context, p backends.RetryParams) error {
	return s.then(func() error { return s.Backend.Retry(ctx, p) })
}

func (s *severable) DeadLetter(ctx context.Context, p backends.DeadLetterParams) error {
	return s.then(func() error { return s.Backend.DeadLetter(ctx, p) })
}

func (s *severable) then(call func() error) error {
	if err := s.gate(); err != nil {
		return err
	}
	return call()
}

// Close leaves the shared backend open for the other workers.
func (s *severable) Close() error { return nil }

// memorySpawner starts in-process workers on one shared backend.
func memorySpawner(t *testing.T, b backends.Backend, ledger *os.File, logs string) func() *member {
	var n atomic.Int64
	logf, err := os.Create(filepath.Join(logs, "memory-workers.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	logger := slog.New(slog.NewTextHandler(logf, nil))
	return func() *member {
		s := &severable{Backend: b}
		w := newWorker(s, logger)
		name := fmt.Sprintf("m%d", n.Add(1))
		register(w, name, ledger, func() bool { return !s.dead.Load() })
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.dead.Store(true); stopNow(w) })
		return &member{
			name: name,
			kill: func() {
				s.dead.Store(true)
				go stopNow(w) // its handlers end in their own time, as a dead process's leases do
			},
			freeze: func(d time.Duration) { s.until.Store(time.Now().Add(d).UnixNano()) },
			term: func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = w.Stop(ctx)
			},
		}
	}
}

// stopNow stops a worker without waiting for its jobs: whatever it held
// is given back through a backend that no longer answers, so the leases
// expire as a killed process's do.
func stopNow(w *worker.Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = w.Stop(ctx)
}
