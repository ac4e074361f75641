package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/worker"
)

// The job mix. Each job's arguments say what its handler does, so the
// ledger alone tells which outcome every job must reach.
const (
	quick = "quick" // 5-25 ms
	slow  = "slow"  // 50-500 ms: often running when its worker is killed
	flaky = "flaky" // fails its first Fail attempts, then succeeds
	perm  = "perm"  // fails with retry.Permanent: must end dead
)

type chaosArgs struct {
	N     int    `json:"n"`
	Kind  string `json:"k"`
	Sleep int    `json:"ms"`
	Fail  int    `json:"f,omitempty"`
}

// argsFor is job n's part of the mix: 10% slow, 20% flaky, 5% failing
// permanently, the rest quick.
func argsFor(n int) chaosArgs {
	a := chaosArgs{N: n, Kind: quick, Sleep: 5 + rand.IntN(20)}
	switch {
	case n%10 == 0:
		a.Kind, a.Sleep = slow, 50+rand.IntN(450)
	case n%10 == 1 || n%10 == 2:
		a.Kind, a.Fail = flaky, 1+n%2
	case n%20 == 3:
		a.Kind = perm
	}
	return a
}

// needed is how many executions job a needs at the least.
func (a chaosArgs) needed() int { return a.Fail + 1 }

// The queues: "chaos" is unbounded; "bounded" holds at most maxDepth
// unfinished jobs and is hammered by boundedEnqueuers.
const (
	mainQueue        = "chaos"
	boundedQueue     = "bounded"
	maxDepth         = 200
	boundedEnqueuers = 8
	mainEnqueuers    = 4
)

// chaosTask retries quickly (flaky jobs fail at most twice) and has room
// for the redeliveries a kill every second or two causes.
var chaosTask = queue.NewTask[chaosArgs, queue.None]("chaos.job", queue.TaskOptions{
	Queue: mainQueue,
	Retry: &retry.Policy{Stop: retry.StopAfterAttempt(6), Wait: retry.WaitRandom(20*time.Millisecond, 100*time.Millisecond)},
})

// The worker processes' lease: a SIGSTOPped worker is stopped for longer.
const lease = 2 * time.Second

func clientConfig() queue.Config {
	return queue.Config{Queues: []*queue.Queue{queue.NewQueue(boundedQueue, queue.QueueOptions{MaxDepth: maxDepth})}}
}

func newWorker(b backends.Backend, logger *slog.Logger) *worker.Worker {
	return worker.New(b, worker.Config{
		// Few slots for the bounded queue, so its enqueuers outrun its
		// workers and the bound is what holds them back.
		Queues:      []worker.QueueConfig{{Name: mainQueue}, {Name: boundedQueue, Concurrency: 2}},
		Concurrency: 8, LeaseDuration: lease, PollInterval: 100 * time.Millisecond, Logger: logger,
	})
}

// register installs the handler: it does what the arguments say and
// appends one ledger line per execution before it returns:
//
//	<job> <kind> <worker> <delivery> <attempt> <unix ms> <ok|fail|perm>
//
// One write of one short line to an O_APPEND file keeps lines whole
// across processes.
func register(w *worker.Worker, who string, ledger *os.File, alive func() bool) {
	worker.Register(w, chaosTask, func(ctx context.Context, a chaosArgs) (queue.None, error) {
		time.Sleep(time.Duration(a.Sleep) * time.Millisecond)
		rec, _ := worker.JobFromContext(ctx)
		outcome, err := "ok", error(nil)
		switch {
		case a.Kind == perm:
			outcome, err = "perm", retry.Permanent(errors.New("chaos: permanent failure"))
		case rec.Attempts() < a.Fail:
			outcome, err = "fail", errors.New("chaos: flaky failure")
		}
		if !alive() { // an in-process worker "killed" meanwhile writes nothing more
			return queue.None{}, errors.New("chaos: worker killed")
		}
		if _, werr := fmt.Fprintf(ledger, "%s %s %s %d %d %d %s\n", rec.ID, a.Kind, who, rec.Deliveries,
			rec.Attempts()+1, time.Now().UnixMilli(), outcome); werr != nil {
			return queue.None{}, werr
		}
		return queue.None{}, err
	})
}

// runWorkerProcess is a worker process's life: it runs jobs until SIGTERM
// (or until the test SIGKILLs it). With CONVEYOR_CHAOS_MODE=chord it runs
// the chord test's steps instead (runChordWorker).
func runWorkerProcess(sp spec, ledgerPath string) error {
	if os.Getenv("CONVEYOR_CHAOS_MODE") == "chord" {
		return runChordWorker(sp, ledgerPath)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	b, err := open(context.Background(), sp, slog.Default())
	if err != nil {
		return err
	}
	defer b.Close()
	f, err := os.OpenFile(ledgerPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	w := newWorker(b, slog.Default())
	register(w, fmt.Sprintf("p%d", os.Getpid()), f, func() bool { return true })
	if err := w.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.Stop(sctx)
}

// enqueueStatus is what an enqueue's answer says about the job.
type enqueueStatus int

const (
	acked     enqueueStatus = iota // stored: the job must finish
	refused                        // ErrQueueFull and the like: the job must not exist
	ambiguous                      // ErrOutcomeUnknown or a transport error: look it up
)

// enqueued is one enqueue attempt the test made.
type enqueued struct {
	id     string
	queue  string
	args   chaosArgs
	status enqueueStatus
	err    error
	took   time.Duration
	// outcomeUnknown: the error was a *queue.OutcomeUnknownError naming
	// this job, as the client promises for an enqueue that may have landed.
	outcomeUnknown bool
}

// classify turns an enqueue's error into what the test expects of the job.
// Refusals are the errors that promise nothing was stored; every other
// error may have followed a write the backend applied.
func classify(err error) enqueueStatus {
	switch {
	case err == nil:
		return acked
	case errors.Is(err, queue.ErrQueueFull), errors.Is(err, queue.ErrInvalid),
		errors.Is(err, queue.ErrPayloadTooLarge), errors.Is(err, queue.ErrUnsupported):
		return refused
	}
	return ambiguous
}

// enqueueLog collects every enqueue attempt of a run.
type enqueueLog struct {
	mu   sync.Mutex
	jobs []*enqueued
}

func (l *enqueueLog) add(e *enqueued) {
	l.mu.Lock()
	l.jobs = append(l.jobs, e)
	l.mu.Unlock()
}

func (l *enqueueLog) all() []*enqueued {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*enqueued(nil), l.jobs...)
}

// enqueueOne enqueues one job under a caller-chosen ID and records the
// attempt, classified.
func enqueueOne(c *queue.Client, log *enqueueLog, id, q string, a chaosArgs, delay time.Duration) *enqueued {
	return enqueueBatch(c, log, []string{id}, q, []chaosArgs{a}, delay)[0]
}

// enqueueBatch enqueues jobs in one call (all or nothing) under
// caller-chosen IDs and records each, classified by the call's answer.
func enqueueBatch(c *queue.Client, log *enqueueLog, ids []string, q string, args []chaosArgs, delay time.Duration) []*enqueued {
	reqs := make([]queue.Request, len(ids))
	for i, id := range ids {
		reqs[i] = chaosTask.Request(args[i], &queue.EnqueueOptions{ID: id, Queue: q, Delay: delay})
	}
	// The bound keeps an enqueue from hanging on a server being restarted.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.EnqueueMany(ctx, reqs...)
	took := time.Since(start)
	var oue *queue.OutcomeUnknownError
	named := map[string]bool{}
	if errors.As(err, &oue) {
		for _, id := range oue.IDs {
			named[id] = true
		}
	}
	out := make([]*enqueued, len(ids))
	for i, id := range ids {
		out[i] = &enqueued{id: id, queue: q, args: args[i], status: classify(err), err: err, took: took, outcomeUnknown: named[id]}
		log.add(out[i])
	}
	return out
}

// enqueuers runs the main queue's enqueuers, paced so that enqueueing
// spans the whole chaos phase, and the bounded queue's, which enqueue as
// fast as the queue takes jobs until the main ones are done. progress
// counts the main queue's attempts.
type enqueuers struct {
	c     *queue.Client
	log   enqueueLog
	total int
	// batch is the bounded queue's batch size: a few jobs per call where
	// a batch is all or nothing, so the hammer outruns the workers; one
	// where it is not (AMQP without a store), so each refusal is exact.
	batch    int
	span     time.Duration
	progress atomic.Int64
	done     chan struct{}
}

func (e *enqueuers) run() {
	var main, bounded sync.WaitGroup
	start := time.Now()
	var next atomic.Int64
	for range mainEnqueuers {
		main.Go(func() {
			for {
				n := int(next.Add(1) - 1)
				if n >= e.total {
					return
				}
				time.Sleep(time.Until(start.Add(e.span * time.Duration(n) / time.Duration(e.total))))
				enqueueOne(e.c, &e.log, fmt.Sprintf("j%d", n), mainQueue, argsFor(n), 0)
				e.progress.Add(1)
			}
		})
	}
	stop := make(chan struct{})
	var nb atomic.Int64
	for range boundedEnqueuers {
		bounded.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var ids []string
				var args []chaosArgs
				for range e.batch {
					n := int(nb.Add(1) - 1)
					ids = append(ids, fmt.Sprintf("b%d", n))
					args = append(args, chaosArgs{N: n, Kind: quick, Sleep: 10 + rand.IntN(30)})
				}
				if enqueueBatch(e.c, &e.log, ids, boundedQueue, args, 0)[0].status != acked {
					// Then hammer again, soon: 8 enqueuers each trying
					// 25 times a second keep the queue at its bound
					// without starving the main queue's enqueuers of
					// the CPU (or of SQLite's one writer).
					time.Sleep(time.Duration(20+rand.IntN(40)) * time.Millisecond)
				}
			}
		})
	}
	main.Wait()
	close(stop)
	bounded.Wait()
	close(e.done)
}

// depthSamples is what the sampler saw of the bounded queue's depth.
type depthSamples struct {
	n, over, failed, worst int
}

// sampleDepth reads the bounded queue's depth every 50 ms until stop.
func sampleDepth(depth func(context.Context) (int, error), stop <-chan struct{}) *depthSamples {
	s := &depthSamples{}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return s
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		d, err := depth(ctx)
		cancel()
		if err != nil {
			s.failed++ // the server is being restarted
			continue
		}
		s.n++
		s.worst = max(s.worst, d)
		if d > maxDepth {
			s.over++
		}
	}
}

// depthOf is how the sampler reads the bounded queue's depth: the
// backend's counts; with an AMQP store, the counter the bound is kept
// with (its counts come from a scan, which is no snapshot); without a
// store, the broker's count of ready messages, which is what its
// x-max-length bounds.
func depthOf(o *opened) func(context.Context) (int, error) {
	switch {
	case o.kv != nil:
		return func(ctx context.Context) (int, error) { return depthCounter(ctx, o, boundedQueue) }
	case o.insp != nil:
		return func(ctx context.Context) (int, error) {
			st, err := o.insp.QueueStats(ctx, backends.QueueStatsParams{Queue: boundedQueue})
			if err != nil || len(st) == 0 {
				return 0, err
			}
			return st[0].Depth(), nil
		}
	}
	return func(ctx context.Context) (int, error) { return brokerReady(ctx, o, boundedQueue) }
}

// depthCounter reads the AMQP store's depth counter of a queue.
func depthCounter(ctx context.Context, o *opened, q string) (int, error) {
	kv, err := o.kv.GetKV(ctx, backends.GetKVParams{Key: o.sp.Prefix + "/amqp/depth/" + q})
	if errors.Is(err, job.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(kv.Value))
}

// brokerReady is the broker's count of messages ready in a work queue.
func brokerReady(_ context.Context, o *opened, q string) (int, error) {
	return o.probe.ready(o.sp.Prefix + ".q." + q)
}
