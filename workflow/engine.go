package workflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// Config configures an Engine. Zero values mean the stated default.
type Config struct {
	// ReconcileEvery is how often Run scans the unfinished workflows and
	// advances what a crash left behind (a step whose job finished while
	// no engine heard of it, a start half done). Every process with an
	// engine may run it: each change is a compare-and-set, so two
	// reconcilers never advance a workflow twice. Default 30s.
	ReconcileEvery time.Duration
	// StartGrace is how long a workflow may stay Starting before the
	// reconciler completes its start (its Enqueue call died midway).
	// Default 1m.
	StartGrace time.Duration
	// TxGrace is how long a workflow enqueued by EnqueueTx may wait for
	// its first jobs to appear (the caller's transaction to commit) before
	// the reconciler takes it for rolled back and deletes its record.
	// Default 1h.
	TxGrace time.Duration
	// KeepFinished is how long a finished workflow's record is kept.
	// Default DefaultKeepFinished (7 days); negative: forever.
	KeepFinished time.Duration
	// Logger receives what the engine could not do (its callers are
	// workers' goroutines, which must not wait for it). Default
	// slog.Default().
	Logger *slog.Logger
	// Clock is the time records are stamped with and grace periods read
	// from. Default the system clock.
	Clock backends.Clock
}

func (c Config) withDefaults() Config {
	if c.ReconcileEvery <= 0 {
		c.ReconcileEvery = 30 * time.Second
	}
	if c.StartGrace <= 0 {
		c.StartGrace = time.Minute
	}
	if c.TxGrace <= 0 {
		c.TxGrace = time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = backends.SystemClock{}
	}
	return c
}

// Engine moves workflows on: it hears from a worker which step jobs
// finished (Observer), gives step handlers their dependencies' results
// (Middleware), advances the records off the worker's goroutines (Run),
// and heals what crashes left behind (Reconcile). Run one in every worker
// process; any number may share a backend.
type Engine struct {
	s   *store
	cfg Config

	mu      sync.Mutex
	pending map[string]map[string]StepState // workflow -> step -> finished as
	wake    chan struct{}
	armed   time.Time          // when Run's next paced round is due (zero: none)
	held    heldRecords        // large records between rounds (flush.go)
	parked  map[string]parking // workflows whose outcomes wait unwritten (park.go)
}

// NewEngine returns an engine on client c's backend, which must be a
// backends.KVStore and a backends.Inspector.
func NewEngine(c *queue.Client, cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	keep := cfg.KeepFinished
	if keep < 0 {
		keep = -1
	}
	s, err := newStore(c, cfg.Clock, keep)
	if err != nil {
		return nil, err
	}
	if s.keep < 0 {
		s.keep = 0 // save: no expiry
	}
	return &Engine{s: s, cfg: cfg, pending: map[string]map[string]StepState{}, wake: make(chan struct{}, 1), parked: map[string]parking{}}, nil
}

// Install returns cfg with the engine's middleware first and its observer
// wrapping cfg.Observer (which still hears everything), for worker.New.
func (e *Engine) Install(cfg worker.Config) worker.Config {
	cfg.Middleware = append([]worker.Middleware{e.Middleware()}, cfg.Middleware...)
	cfg.Observer = e.Observer(cfg.Observer)
	return cfg
}

// Middleware puts the step's view of its workflow in the handler's
// context, for Result, Results, Previous, All and Current. It makes no
// backend call: results are read when the handler asks for them.
func (e *Engine) Middleware() worker.Middleware {
	return func(next worker.HandlerFunc) worker.HandlerFunc {
		return func(ctx context.Context, j *job.Record) ([]byte, error) {
			if id, step := j.Headers[HeaderWorkflow], j.Headers[HeaderStep]; id != "" && step != "" {
				v := &stepView{s: e.s, workflow: id, step: step}
				if deps, ok := j.Headers[HeaderDeps]; ok {
					v.deps = []string{} // known, maybe none
					if deps != "" {
						v.deps = strings.Split(deps, ",")
					}
				}
				ctx = context.WithValue(ctx, stepKey{}, v)
			}
			return next(ctx, j)
		}
	}
}

// Observer returns a worker.Observer that notes every step job that
// finished (done, dead or cancelled) for Run to advance, then tells next
// (nil: nobody). Noting is a map insert: the worker's goroutine never
// waits for the backend on the engine's behalf.
func (e *Engine) Observer(next worker.Observer) worker.Observer {
	return &observer{e: e, next: next}
}

type observer struct {
	e    *Engine
	next worker.Observer
}

func (o *observer) Started(rec *job.Record) {
	if o.next != nil {
		o.next.Started(rec)
	}
}

func (o *observer) Finished(rec *job.Record, out worker.Outcome, ran time.Duration) {
	var st StepState
	switch out {
	case worker.Succeeded:
		st = StepDone
	case worker.DeadLettered:
		st = StepDead
	case worker.Cancelled:
		st = StepCancelled
	}
	if id, step := rec.Headers[HeaderWorkflow], rec.Headers[HeaderStep]; st != "" && id != "" && step != "" {
		o.e.note(id, step, st)
	}
	if o.next != nil {
		o.next.Finished(rec, out, ran)
	}
}

func (e *Engine) note(id, step string, st StepState) {
	e.mu.Lock()
	m := e.pending[id]
	if m == nil {
		m = map[string]StepState{}
		e.pending[id] = m
	}
	m[step] = st
	if due := e.held.due(id); due.After(time.Now()) {
		// Its paced round takes it: wake Run only to arm that round.
		if !e.armed.IsZero() && !due.Before(e.armed) {
			e.mu.Unlock()
			return
		}
		e.armed = due
	}
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run advances the workflows whose steps this process's workers finished,
// as they finish, and reconciles every ReconcileEvery, until ctx ends.
// Failures are logged and left to the next round: the reconciler finds
// whatever an advance could not record.
func (e *Engine) Run(ctx context.Context) error {
	tick := time.NewTicker(e.cfg.ReconcileEvery)
	defer tick.Stop()
	due := time.NewTimer(time.Hour) // the next paced workflow's round
	due.Stop()
	for {
		var flush bool
		select {
		case <-ctx.Done():
			e.stopFlush(ctx)
			return nil
		case <-e.wake:
			flush = true
		case <-due.C:
			flush = true
		case <-tick.C:
			if _, err := e.Reconcile(ctx); err != nil && ctx.Err() == nil {
				e.cfg.Logger.Warn("workflow: reconcile failed", "err", err)
			}
		}
		if !flush {
			continue
		}
		if _, err := e.flush(ctx, true); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Warn("workflow: advance failed; the reconciler will retry", "err", err)
		}
		e.mu.Lock()
		next := e.armed
		e.mu.Unlock()
		if !next.IsZero() {
			due.Reset(time.Until(next))
		}
	}
}

// stopTimeout bounds Run's last write when it stops.
const stopTimeout = 5 * time.Second

// stopFlush writes the outcomes Run still holds (parked, or paced for a
// large record's next round) as it stops: otherwise their workflows would
// wait for another engine's reconcile, up to ReconcileEvery.
func (e *Engine) stopFlush(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if _, err := e.Flush(ctx); err != nil {
		e.cfg.Logger.Warn("workflow: last advance failed as Run stopped; the reconciler will retry", "err", err)
	}
}

// Reconcile advances every unfinished workflow from its jobs' states, read
// by ID: it heals a step whose job finished while no engine heard of it,
// a replay done outside Replay, a start a crash left half done, and a
// transactional start whose transaction never committed. It returns how
// many workflows it changed.
func (e *Engine) Reconcile(ctx context.Context) (int, error) {
	marks, err := e.s.kv.ListKV(ctx, backends.ListKVParams{Prefix: openPrefix, Now: e.s.now()})
	if err != nil {
		return 0, fmt.Errorf("workflow: reconcile: %w", err)
	}
	var errs []error
	n := 0
	for _, m := range marks {
		id := strings.TrimPrefix(m.Key, openPrefix)
		r, version, err := e.s.load(ctx, id)
		switch {
		case errors.Is(err, job.ErrNotFound):
			// Its Enqueue died between the marker and the record, or
			// the record expired: past the grace, nothing is coming.
			var at time.Time
			if at.UnmarshalText(m.Value) != nil || e.s.now().Sub(at) >= e.cfg.StartGrace {
				e.s.sweepSpecs(ctx, id, "") // a spec it wrote before it died
				_ = e.s.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: m.Key, IfVersion: m.Version})
			}
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		case r.State.Final():
			// Its final save could not expire its spec or delete the
			// marker.
			var expires time.Time
			if e.s.keep > 0 {
				expires = r.Finished.Add(e.s.keep)
			}
			if err := e.s.finalize(ctx, r, expires); err != nil {
				errs = append(errs, err)
				continue
			}
			_ = e.s.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: m.Key, IfVersion: m.Version})
			continue
		}
		changed, err := e.reconcile(ctx, r, version)
		if err != nil {
			errs = append(errs, err)
		}
		if changed {
			n++
		}
	}
	return n, errors.Join(errs...)
}

func (e *Engine) reconcile(ctx context.Context, r *record, version int64) (bool, error) {
	age := e.s.now().Sub(r.Created)
	switch {
	case r.State == Starting && r.Tx:
		return e.reconcileTx(ctx, r, version, age)
	case (r.State == Starting || r.Filling) && age < e.cfg.StartGrace:
		return false, nil // its Enqueue call may still be at work
	case r.Filling:
		return true, e.s.refill(ctx, r) // its Enqueue call died filling it (fill.go)
	}
	obs := map[string]StepState{}
	for _, st := range r.Steps {
		if !st.HasJob || (st.State != StepEnqueued && !st.State.failed()) {
			continue
		}
		rec, err := e.s.in.GetJob(ctx, backends.GetJobParams{ID: JobID(r.ID, st.Name)})
		switch {
		case errors.Is(err, job.ErrNotFound) && st.State == StepEnqueued:
			// Deleted, or pruned after it finished unseen: nothing will
			// ever finish it, so the step fails.
			obs[st.Name] = stepGone
		case err != nil && !errors.Is(err, job.ErrNotFound):
			return false, fmt.Errorf("workflow %s: step %s: %w", r.ID, st.Name, err)
		case err == nil:
			if got := stepStateOf(rec.State); got != st.State {
				obs[st.Name] = got
			}
		}
	}
	_, err := e.s.advance(ctx, r.ID, obs)
	if err != nil && r.State == Starting && refused(err) {
		// A start whose first jobs are refused is refused whole.
		return true, e.s.remove(ctx, r, version)
	}
	return len(obs) > 0 || r.State == Starting, err
}

// reconcileTx settles a transactional start: a root job seen means the
// caller committed; none after TxGrace means it rolled back.
func (e *Engine) reconcileTx(ctx context.Context, r *record, version int64, age time.Duration) (bool, error) {
	for _, st := range r.Steps {
		if len(st.Deps) != 0 {
			continue
		}
		rec, err := e.s.in.GetJob(ctx, backends.GetJobParams{ID: JobID(r.ID, st.Name)})
		if errors.Is(err, job.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("workflow %s: step %s: %w", r.ID, st.Name, err)
		}
		_, err = e.s.advance(ctx, r.ID, map[string]StepState{st.Name: stepStateOf(rec.State)})
		return true, err
	}
	if age < e.cfg.TxGrace {
		return false, nil
	}
	return true, e.s.remove(ctx, r, version)
}

// WorkDue runs w's due jobs and advances the workflows they belong to,
// over and over until nothing is due and nothing was advanced, in the
// caller's goroutine: the deterministic drain tests and examples use.
// w must have the engine installed (Install). It returns how many jobs
// ran.
func (e *Engine) WorkDue(ctx context.Context, w *worker.Worker) (int, error) {
	total := 0
	for {
		n, err := w.WorkDue(ctx)
		total += n
		if err != nil {
			return total, err
		}
		m, err := e.Flush(ctx)
		if err != nil {
			return total, err
		}
		if n == 0 && m == 0 {
			return total, nil
		}
	}
}
