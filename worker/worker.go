package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Worker runs jobs from a backend with registered handlers.
type Worker struct {
	b backends.Backend
	// exhaustive: a short reserve of b means its queue had no more due
	// (backends.ExhaustiveReserver).
	exhaustive bool
	cfg        Config
	log        *slog.Logger
	brk        breakers
	// cmp batches completions once started, if the backend can.
	cmp *completer

	mu       sync.Mutex
	handlers map[string]*handler
	// running is keyed by lease, not job ID: a job whose message was
	// delivered twice (at-least-once) can run twice in one process, and
	// each delivery keeps its own slot, heartbeat and cancel.
	running  map[leaseKey]*runningJob
	perQueue map[string]int
	started  bool
	paused   bool            // Pause: fetch nothing until Resume
	base     context.Context // handlers' contexts descend from it: Start's, without its cancellation

	wake     chan struct{} // a slot freed or jobs may be due
	stop     context.CancelFunc
	fetching sync.WaitGroup // fetch and listen loops: they start jobs
	loops    sync.WaitGroup // heartbeat and completer loops: they serve jobs
	jobs     sync.WaitGroup // running jobs
	idle     chan struct{}  // closed when Stop is done with the jobs: ends heartbeats
	drain    chan struct{}  // closed when Stop has stopped fetching: Draining, Iterate
	stopped  chan struct{}
	reg      registry // this worker's entry in the backend's list of workers
	unknown  unknownTasks
	flow     flowState      // limits' gate and the slots running jobs hold (limits.go)
	dry      dryQueues      // queues the fetch loop skips for now (queues.go)
	queueAt  map[string]int // place of each queue in cfg.Queues, by name (queueNamed)
}

// leaseKey names one delivery: a token alone may be shared by the jobs of
// one Reserve call (SQLite's are).
type leaseKey struct{ job, token string }

func keyOf(l job.Lease) leaseKey { return leaseKey{l.JobID, l.Token} }

type runningJob struct {
	rec    *job.Record
	cancel context.CancelCauseFunc
}

// Causes a worker gives when it cancels a handler's context. A handler sees
// them through context.Cause.
var (
	// ErrShutdown: the worker's drain timeout passed; the job is released
	// for another worker without using an attempt.
	ErrShutdown = errors.New("conveyor: worker shutting down")
	// ErrCancelRequested: someone cancelled the running job.
	ErrCancelRequested = errors.New("conveyor: job cancel requested")
	// ErrTimeout: the attempt ran past its timeout; it counts as a failure.
	ErrTimeout = errors.New("conveyor: job timed out")
)

// shutdownGrace is how long Stop waits for handlers to return once it has
// cancelled them.
const shutdownGrace = 5 * time.Second

// New returns a worker on backend b. Register handlers, then Start it.
func New(b backends.Backend, cfg Config) *Worker {
	cfg = cfg.withDefaults()
	w := &Worker{
		b: b, exhaustive: backends.Exhaustive(b), cfg: cfg, log: cfg.Logger.With("worker", cfg.ID),
		brk:      breakers{cfg: cfg.Breakers},
		handlers: map[string]*handler{},
		running:  map[leaseKey]*runningJob{},
		perQueue: map[string]int{},
		wake:     make(chan struct{}, 1),
		base:     context.Background(),
		idle:     make(chan struct{}),
		drain:    make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	w.indexQueues()
	return w
}

// ID returns the worker's ID.
func (w *Worker) ID() string { return w.cfg.ID }

// Breakers returns the state of every breaker a job has used.
func (w *Worker) Breakers() []BreakerState { return w.brk.states() }

// Running returns how many jobs are running now.
func (w *Worker) Running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.running)
}

// Start begins fetching and running jobs and returns; a second Start
// fails. Cancelling ctx stops fetching; use Stop to drain. Handlers'
// contexts carry ctx's values (a logger, a trace) but not its cancellation,
// so a job is cancelled only by Stop's deadline, a lost lease or a cancel
// request.
func (w *Worker) Start(ctx context.Context) error {
	if err := w.start(ctx); err != nil {
		return err
	}
	w.announce(ctx) // outside w.mu: the announcement reads the worker's state
	return nil
}

func (w *Worker) start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return errors.New("worker: already started")
	}
	if len(w.handlers) == 0 {
		return errors.New("worker: no handlers registered")
	}
	if err := checkFair(w.b, w.cfg.Queues); err != nil {
		return err
	}
	w.started = true
	// Handlers see the values of Start's context (a logger, a trace) but
	// not its end: stopping is Stop's drain, not a cancelled context.
	w.base = context.WithoutCancel(ctx)
	fetchCtx, cancel := context.WithCancel(ctx)
	w.stop = cancel
	w.fetching.Add(1)
	go w.fetchLoop(fetchCtx)
	if err := w.initLimits(); err != nil {
		return err
	}
	w.reg.kv, _ = w.b.(backends.KVStore)
	w.reg.host, _ = os.Hostname()
	w.reg.started = time.Now()
	w.loops.Add(1)
	go w.heartbeatLoop()
	if bc, ok := w.b.(backends.BatchCompleter); ok {
		w.cmp = newCompleter(bc)
		w.loops.Add(1)
		go func() {
			defer w.loops.Done()
			w.cmp.run(w.idle)
		}()
	}
	if n, ok := w.b.(backends.Notifier); ok {
		// Subscribe before Start returns, so that a job enqueued right
		// after Start wakes the worker instead of waiting for a poll.
		events, _ := n.Listen(fetchCtx, w.listenParams()) // on failure the loop retries
		w.fetching.Add(1)
		go w.listenLoop(fetchCtx, n, events)
	}
	go func() {
		select {
		case <-ctx.Done():
			_ = w.Stop(ctx) // ctx is done: releases whatever still runs
		case <-w.stopped:
		}
	}()
	return nil
}

// Stop stops fetching, waits for running jobs until ctx ends, then cancels
// the rest with ErrShutdown and releases their leases so another worker takes
// them at once, without using an attempt. It is safe to call more than once.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	if !w.started {
		w.mu.Unlock()
		return nil
	}
	if w.stop == nil { // another Stop is under way
		w.mu.Unlock()
		<-w.stopped
		return nil
	}
	stop := w.stop
	w.stop = nil
	w.mu.Unlock()

	stop()
	w.fetching.Wait() // no job starts after this, so jobs.Wait is final
	// Only now does the drain begin for the handlers: a job one of them
	// releases at the drain (Iterate) is due again at once, and a fetch
	// loop still running would have taken it back and run a batch more,
	// again and again until it stopped.
	close(w.drain)
	drained := make(chan struct{})
	go func() { w.jobs.Wait(); close(drained) }()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		w.mu.Lock()
		n := len(w.running)
		for _, r := range w.running {
			r.cancel(ErrShutdown)
		}
		w.mu.Unlock()
		select {
		case <-drained:
			err = fmt.Errorf("worker: drain timed out; released %d running jobs", n)
		case <-time.After(shutdownGrace):
			// Heartbeats stop below, so their leases expire and another
			// worker takes the jobs; the handlers are left to return.
			err = fmt.Errorf("worker: drain timed out; %d of %d handlers ignored cancellation for %s", w.Running(), n, shutdownGrace)
		}
	}
	close(w.idle)
	w.loops.Wait()
	w.withdraw(context.WithoutCancel(ctx))
	close(w.stopped)
	return err
}

func (w *Worker) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// fetchLoop reserves jobs while there are free slots and starts them.
func (w *Worker) fetchLoop(ctx context.Context) {
	defer w.fetching.Done()
	poll := time.NewTimer(0)
	defer poll.Stop()
	backoff := 50 * time.Millisecond
	for {
		w.gatherSlots(ctx)
		got, err := w.fetchRound(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := w.dry.nextWake(time.Now(), w.cfg.PollInterval)
		switch {
		case err != nil:
			w.log.Error("reserve failed; backing off", "err", err, "backoff", backoff)
			wait, backoff = backoff, min(2*backoff, 5*time.Second)
		case got:
			backoff = 50 * time.Millisecond
			continue // more may be due: fetch again while slots are free
		}
		poll.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-poll.C:
		}
	}
}

// fetchGather is the longest the fetch loop waits for busy slots to free up
// before it reserves for the few that are free.
const fetchGather = 2 * time.Millisecond

// gatherSlots waits, while jobs are running and fewer than half the slots a
// reserve could fill are free, until that many are free or fetchGather has
// passed. Under load slots free one at a time; reserving for each as it
// frees would spend a round trip per job and make the fetch loop, not the
// backend, the limit. An idle worker does not wait at all.
func (w *Worker) gatherSlots(ctx context.Context) {
	var timer *time.Timer
	for {
		w.mu.Lock()
		running, concurrency := len(w.running), w.cfg.Concurrency
		w.mu.Unlock()
		if want := min(w.cfg.FetchLimit, concurrency) / 2; running == 0 || concurrency-running >= want {
			return
		}
		if timer == nil {
			timer = time.NewTimer(fetchGather)
			defer timer.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case <-w.wake:
		}
	}
}

// fetchRound visits the queues once in priority order and reports whether
// it started any job.
func (w *Worker) fetchRound(ctx context.Context) (bool, error) {
	got := false
	live := w.live()
	for _, q := range queueOrder(w.dry.wetOf(live.Queues, time.Now()), live.StrictPriority) {
		free := w.freeSlots(q)
		if free == 0 || w.behindOpenBreakers(q.Name) || w.queueQuiet(q.Name) {
			continue
		}
		began, stamp := time.Now(), w.dry.stamp(q.Name)
		// Jobs of every task come back, also of tasks this worker has no
		// handler for: ReserveParams has no task filter yet (a later
		// contract change). execute releases those (see unknown.go).
		limit := min(free, w.cfg.FetchLimit)
		recs, heldBack, err := w.reserve(ctx, q, backends.ReserveParams{
			Queue: q.Name, Limit: limit, Lease: w.cfg.LeaseDuration, Worker: w.cfg.ID,
		})
		if err != nil {
			return got, fmt.Errorf("queue %s: %w", q.Name, err)
		}
		// An empty reserve means the queue has nothing due; so does a
		// short one, from a backend that fills its reserves while it can.
		if heldBack == 0 && (len(recs) == 0 || len(recs) < limit && !q.Fair && w.exhaustive) {
			w.dry.dry(q.Name, stamp, began, time.Now().Add(w.cfg.PollInterval))
		}
		w.preAdmit(ctx, recs) // limits asked once for the batch (limits.go)
		for _, rec := range recs {
			w.startJob(rec)
		}
		if len(recs)+heldBack > 0 {
			got = true
			if live.StrictPriority {
				return true, nil // start over from the first queue
			}
		}
	}
	return got, nil
}

func (w *Worker) freeSlots(q QueueConfig) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused {
		return 0
	}
	free := w.cfg.Concurrency - len(w.running)
	if q.Concurrency > 0 {
		free = min(free, q.Concurrency-w.perQueue[q.Name])
	}
	return max(free, 0)
}

// behindOpenBreakers reports whether every task this worker routes to queue
// q by default waits behind an open breaker; fetching would only postpone
// its jobs again.
func (w *Worker) behindOpenBreakers(q string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	guarded := false
	for _, h := range w.handlers {
		o := h.def.Options()
		if o.Queue != q {
			continue
		}
		if o.Breaker == "" || !w.brk.isOpen(o.Breaker) {
			return false
		}
		guarded = true
	}
	return guarded
}

// listenLoop turns backend notifications into wake-ups.
func (w *Worker) listenLoop(ctx context.Context, n backends.Notifier, events <-chan backends.Event) {
	defer w.fetching.Done()
	for ctx.Err() == nil {
		if events == nil {
			var err error
			if events, err = n.Listen(ctx, w.listenParams()); err != nil {
				w.log.Warn("listen failed; relying on polling", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(w.cfg.PollInterval):
				}
				continue
			}
		}
		for ev := range events {
			switch ev.Kind {
			case backends.JobsAvailable:
				w.dry.wet(ev.Queue)
				w.signal()
			case backends.Changed:
				w.dry.wet("")
				w.signal()
			}
		}
		events = nil // closed: the backend dropped us, or ctx ended
	}
}

// listenParams asks for what wakes the fetch loop: jobs available in the
// worker's queues (and Changed, which always comes).
func (w *Worker) listenParams() backends.ListenParams {
	queues := make([]string, len(w.cfg.Queues))
	for i, q := range w.cfg.Queues {
		queues[i] = q.Name
	}
	return backends.ListenParams{Queues: queues, Kinds: []backends.EventKind{backends.JobsAvailable}}
}

// heartbeatLoop extends the leases of running jobs every third of the lease
// and stops handlers whose lease was lost or whose job was cancelled; it
// also refreshes the worker's entry in the list of workers. It outlives the
// fetch loop: jobs draining at shutdown keep their leases.
func (w *Worker) heartbeatLoop() {
	defer w.loops.Done()
	t := time.NewTicker(w.cfg.LeaseDuration / 3)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			w.heartbeat()
			ctx, cancel := context.WithTimeout(context.Background(), w.cfg.LeaseDuration/3)
			w.announce(ctx)
			cancel()
		case <-w.idle:
			return
		}
	}
}

func (w *Worker) heartbeat() {
	w.mu.Lock()
	leases := make([]job.Lease, 0, len(w.running))
	for _, r := range w.running {
		leases = append(leases, r.rec.Lease)
	}
	w.mu.Unlock()
	if len(leases) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.LeaseDuration/3)
	defer cancel()
	res, err := w.b.Extend(ctx, backends.ExtendParams{Leases: leases, Lease: w.cfg.LeaseDuration})
	if err != nil {
		w.log.Error("lease heartbeat failed", "err", err, "jobs", len(leases))
		return
	}
	if len(res) != len(leases) { // the contract answers each lease, in order
		w.log.Error("lease heartbeat: the backend answered for another number of leases", "asked", len(leases), "answered", len(res))
		return
	}
	w.renewSlots(leases, res) // concurrency slots end with their leases (limits.go)
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, r := range res {
		rj := w.running[keyOf(leases[i])]
		switch {
		case rj == nil:
		case r.Lost:
			rj.cancel(job.ErrLeaseLost)
		case r.CancelRequested:
			rj.cancel(ErrCancelRequested)
		}
	}
}
