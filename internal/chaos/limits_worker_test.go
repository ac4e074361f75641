package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// The limits under test (limits_test.go), defined once for the test and
// its worker processes.
const (
	limitsRate      = 50              // jobs a second, across every process
	limitsBurst     = limitsRate      // a second's worth: a worker late by less keeps its tokens
	limitsPerKey    = 2               // jobs of one key at once
	limitsLease     = 5 * time.Second // the concurrency case's; a third of it bounds each limiter call
	limitsProcesses = 3
	limitsWorkerEnv = "CONVEYOR_CHAOS_LIMITS_WORKER" // the worker's limitsWorker as JSON
)

type limitsArgs struct{ N int }

var (
	// The rate case's limit is its queue's (limitsWorker.QueueRate): the
	// fetch loop then skips the queue until the next token instead of
	// reserving jobs only to postpone them.
	rateTask  = queue.NewTask[limitsArgs, queue.None]("chaos.limits.rate", queue.TaskOptions{})
	queueRate = &flow.RateLimit{Limit: limitsRate, Per: time.Second, Burst: limitsBurst}
	concTask  = queue.NewTask[limitsArgs, queue.None]("chaos.limits.conc", queue.TaskOptions{
		ConcurrencyLimit: &flow.ConcurrencyLimit{Limit: limitsPerKey, Backoff: 50 * time.Millisecond},
	})
)

// concDuration is how long job n of the concurrency case works: 100-300
// ms, spread.
func concDuration(n int) time.Duration { return time.Duration(100+(n*37)%201) * time.Millisecond }

// limitsWorker is what a worker process of the limits cases runs.
type limitsWorker struct {
	Spec   spec   `json:"spec"`
	Queue  string `json:"queue"`
	Ledger string `json:"ledger"` // appended to: a line per start and per end
	// QueueRate puts queueRate on the queue.
	QueueRate bool `json:"queueRate,omitempty"`
	// Lease is the worker's LeaseDuration. Default 30s.
	Lease time.Duration `json:"lease,omitempty"`
}

// TestLimitsWorkerProcess is the entry point of the limits cases' worker
// processes (the test binary run again with limitsWorkerEnv set); run
// alone, it has nothing to do.
func TestLimitsWorkerProcess(t *testing.T) {
	js := os.Getenv(limitsWorkerEnv)
	if js == "" {
		t.Skip("the worker processes' entry point of TestLimitsRateAcrossProcesses and TestLimitsConcurrencyUnderKill")
	}
	var lw limitsWorker
	if err := json.Unmarshal([]byte(js), &lw); err != nil {
		t.Fatal(err)
	}
	if err := lw.run(); err != nil {
		t.Fatal(err)
	}
}

// run works both limited tasks of lw.Queue until SIGTERM (or SIGKILL),
// writing each start and end to the ledger: "s|e <unix ns> <job> <pid>
// <key> <reserved unix ns>", one write per line on an O_APPEND file, so lines of several
// processes never interleave.
func (lw limitsWorker) run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	o, err := open(ctx, lw.Spec, logger)
	if err != nil {
		return err
	}
	defer o.Close()
	ledger, err := os.OpenFile(lw.Ledger, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer ledger.Close()
	pid := os.Getpid()
	note := func(what string, j ledgerJob) {
		_, _ = fmt.Fprintf(ledger, "%s %d %s %d %s %d\n", what, time.Now().UnixNano(), j.id, pid, j.key, j.reserved.UnixNano())
	}
	// The backend itself, with its Limiter (o hides its capabilities).
	qc := worker.QueueConfig{Name: lw.Queue}
	if lw.QueueRate {
		qc.RateLimit = queueRate
	}
	w := worker.New(o.Backend, worker.Config{ID: fmt.Sprintf("p%d", pid), Concurrency: 50, LeaseDuration: lw.Lease,
		PollInterval: 20 * time.Millisecond, Logger: logger, Queues: []worker.QueueConfig{qc}})
	worker.Register(w, rateTask, func(ctx context.Context, _ limitsArgs) (queue.None, error) {
		note("s", jobOf(ctx))
		return queue.None{}, nil
	})
	worker.Register(w, concTask, func(ctx context.Context, a limitsArgs) (queue.None, error) {
		j := jobOf(ctx)
		note("s", j)
		time.Sleep(concDuration(a.N)) // the job's work, whatever its context says: a SIGKILL ends it
		note("e", j)
		return queue.None{}, nil
	})
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.Stop(sctx)
}

// ledgerJob names a running job for the ledger, with when it was
// reserved (its delivery's StartedAt): its limit admitted it in between.
type ledgerJob struct {
	id, key  string
	reserved time.Time
}

func jobOf(ctx context.Context) ledgerJob {
	r, _ := worker.JobFromContext(ctx)
	k := flow.ByJobKey(r)
	if k == "" {
		k = "-"
	}
	return ledgerJob{id: r.ID, key: k, reserved: r.StartedAt}
}
