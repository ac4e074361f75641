package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/worker"
	"github.com/conveyorhq/conveyor/workflow"
)

// The chord workload: each chord has chordMembers members, whose results
// the callback must receive, all of them, in the group's order.
const (
	chordQueue   = "chords"
	chordMembers = 10
	callbackStep = "cb"
	// chordReconcile is how often each worker process's engine reconciles:
	// a worker killed between a step's completion and its advance leaves
	// the workflow to the next round.
	chordReconcile = 2 * time.Second
	// chordStartGrace: a start the test's Enqueue left half done (the
	// server crashed under it) is completed by a reconciler after this,
	// if the test's retry has not done it first.
	chordStartGrace = 5 * time.Second
)

// chordArgs is one step's arguments: a member's say what it returns and
// how it behaves, the callback's which chord it closes.
type chordArgs struct {
	Chord  int `json:"c"`
	Member int `json:"m"` // -1 for the callback
	Sleep  int `json:"ms"`
	Fail   int `json:"f,omitempty"` // failed attempts before success
}

// memberValue is what member m of chord c returns: never 0, so a result
// that is missing cannot pass for one that is there.
func memberValue(c, m int) int { return c*100 + m + 1 }

// chordSum is what chord c's callback returns: the sum of its members'.
func chordSum(c int) int {
	s := 0
	for m := range chordMembers {
		s += memberValue(c, m)
	}
	return s
}

// memberArgs is member m of chord c: mostly quick; member 0 slow, so that
// kills find it running; member 3 fails its first attempt.
func memberArgs(c, m int) chordArgs {
	a := chordArgs{Chord: c, Member: m, Sleep: 5 + rand.IntN(25)}
	switch m {
	case 0:
		a.Sleep = 100 + rand.IntN(500)
	case 3:
		a.Fail = 1
	}
	return a
}

// The steps retry quickly (a flaky member fails once; a callback whose
// results could not be read while the server restarted tries again).
var (
	chordRetry = &retry.Policy{Stop: retry.StopAfterAttempt(6), Wait: retry.WaitRandom(20*time.Millisecond, 100*time.Millisecond)}

	chordMember   = queue.NewTask[chordArgs, int]("chaos.chord.member", queue.TaskOptions{Queue: chordQueue, Retry: chordRetry})
	chordCallback = queue.NewTask[chordArgs, int]("chaos.chord.callback", queue.TaskOptions{Queue: chordQueue, Retry: chordRetry})
)

// chordOf is chord c: its members in order, then the callback, which
// sleeps 100-400 ms so that kills find it running too.
func chordOf(c int) workflow.Node {
	members := make([]workflow.Node, chordMembers)
	for m := range chordMembers {
		members[m] = workflow.Task(fmt.Sprintf("m%d", m), chordMember, memberArgs(c, m), nil)
	}
	cb := workflow.Task(callbackStep, chordCallback, chordArgs{Chord: c, Member: -1, Sleep: 100 + rand.IntN(300)}, nil)
	return workflow.Chord(cb, members...)
}

// Ledger outcomes of a callback's run beyond ok and fail: "err" (its
// members' results could not be read: retried) and "wrong" (it received
// other than its members' results, in order: a failure of the test).
const (
	outcomeReadErr = "err"
	outcomeWrong   = "wrong"
)

// registerChord installs both steps' handlers. Each appends one ledger
// line per run before it returns, in the chaos test's format (kind member
// or callback).
func registerChord(w *worker.Worker, who string, ledger *os.File, logger *slog.Logger) {
	write := func(ctx context.Context, kind, outcome string) error {
		rec, _ := worker.JobFromContext(ctx)
		_, err := fmt.Fprintf(ledger, "%s %s %s %d %d %d %s\n", rec.ID, kind, who, rec.Deliveries,
			rec.Attempts()+1, time.Now().UnixMilli(), outcome)
		return err
	}
	worker.Register(w, chordMember, func(ctx context.Context, a chordArgs) (int, error) {
		time.Sleep(time.Duration(a.Sleep) * time.Millisecond)
		rec, _ := worker.JobFromContext(ctx)
		if rec.Attempts() < a.Fail {
			if err := write(ctx, "member", "fail"); err != nil {
				return 0, err
			}
			return 0, errors.New("chaos: flaky member")
		}
		if err := write(ctx, "member", "ok"); err != nil {
			return 0, err
		}
		return memberValue(a.Chord, a.Member), nil
	})
	worker.Register(w, chordCallback, func(ctx context.Context, a chordArgs) (int, error) {
		got, err := workflow.All[int](ctx)
		time.Sleep(time.Duration(a.Sleep) * time.Millisecond)
		outcome := "ok"
		switch {
		case err != nil:
			outcome = outcomeReadErr
		case !rightResults(a.Chord, got):
			outcome = outcomeWrong
			err = retry.Permanent(fmt.Errorf("chaos: chord %d's callback received %v", a.Chord, got))
		}
		if err != nil {
			logger.Warn("chord callback", "chord", a.Chord, "outcome", outcome, "err", err)
		}
		if werr := write(ctx, "callback", outcome); werr != nil {
			return 0, werr
		}
		if err != nil {
			return 0, err
		}
		return chordSum(a.Chord), nil
	})
}

// rightResults reports whether got is chord c's members' results, in order.
func rightResults(c int, got []int) bool {
	if len(got) != chordMembers {
		return false
	}
	for m, v := range got {
		if v != memberValue(c, m) {
			return false
		}
	}
	return true
}

// runChordWorker is a chord worker process's life: a worker with the
// workflow engine installed and the engine's Run (which advances the
// chords whose steps it finished and reconciles every chordReconcile),
// until SIGTERM or SIGKILL.
func runChordWorker(sp spec, ledgerPath string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	logger := slog.Default()
	o, err := open(context.Background(), sp, logger)
	if err != nil {
		return err
	}
	defer o.Close()
	f, err := os.OpenFile(ledgerPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	eng, err := workflow.NewEngine(queue.NewClient(o.Backend, queue.Config{}), workflow.Config{
		ReconcileEvery: chordReconcile, StartGrace: chordStartGrace, Logger: logger,
	})
	if err != nil {
		return err
	}
	w := worker.New(o.Backend, eng.Install(worker.Config{
		Queues: []worker.QueueConfig{{Name: chordQueue}}, Concurrency: 8, LeaseDuration: lease,
		PollInterval: 100 * time.Millisecond, Logger: logger, QuietFailedAttempts: true,
	}))
	registerChord(w, fmt.Sprintf("p%d", os.Getpid()), f, logger)
	ectx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = eng.Run(ectx) }()
	if err := w.Start(context.WithoutCancel(ctx)); err != nil {
		cancel()
		return err
	}
	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	err = w.Stop(sctx)
	cancel()
	<-ran
	// What the last jobs' outcomes owe their workflows, before exiting.
	_, ferr := eng.Flush(sctx)
	return errors.Join(err, ferr)
}
