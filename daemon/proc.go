package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/metrics"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/scheduler"
	"github.com/conveyorhq/conveyor/worker"
)

// proc is one worker process: the backend, the worker that fetches, the
// workers a reload or quiet retired that still finish their jobs, and
// the scheduler.
type proc struct {
	app   App
	src   *sources // nil when Run was given a Config: nothing to reload
	b     backends.Backend
	log   *slog.Logger
	level *slog.LevelVar
	rep   *reporter
	slow  atomic.Int64
	sched *scheduler.Scheduler
	// stopWith is set when the process decides to end itself (recycle).
	stopWith chan error

	mu      sync.Mutex
	cfg     Config
	cur     *generation   // the worker fetching, nil once quiet or draining
	retired []*generation // stopping: no fetching, their jobs finishing
	state   string        // "running", "quiet" or "draining"
}

// generation is one worker.Worker of the process. A reload that changes
// what the worker was built with starts a new one and retires the old,
// which stops fetching at once and finishes the jobs it has.
type generation struct {
	w       *worker.Worker
	release context.CancelFunc // ends the drain: running jobs are cancelled and released
	done    chan struct{}      // Stop returned
	err     error
}

// liveKeys change on the running worker (worker.Reconfigure); rebuildKeys
// are what a worker is built with, so changing one needs a new generation.
var (
	liveKeys    = []string{"queues", "fair", "strict", "concurrency"}
	rebuildKeys = []string{"lease", "job-timeout", "breakers"}
)

func newProc(ctx context.Context, app App, src *sources, cfg Config, log *slog.Logger, level *slog.LevelVar, reg *prometheus.Registry) (*proc, error) {
	b, err := openBackend(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	p := &proc{app: app, src: src, b: b, log: log, level: level, cfg: cfg, state: "running", stopWith: make(chan error, 1)}
	p.slow.Store(int64(cfg.SlowJob))
	var obs worker.Observer
	if reg != nil {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		m := metrics.New(reg)
		m.WatchLimits(p.limitStates)
		obs = m
	}
	p.rep = &reporter{onError: app.OnError, log: p.logger, slow: &p.slow, next: obs, failed: map[*job.Record]failedRun{}}
	if err := p.applyLimits(nil, cfg.Limits); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("limits: %w", err)
	}
	if len(app.Tasks) > 0 {
		if err := p.startScheduler(ctx); err != nil {
			_ = b.Close()
			return nil, err
		}
	}
	return p, nil
}

func (p *proc) logger() *slog.Logger { return p.log }

func (p *proc) startScheduler(ctx context.Context) error {
	s, err := scheduler.New(queue.NewClient(p.b, queue.Config{}), scheduler.Config{Tasks: p.app.Tasks, Logger: p.log})
	if errors.Is(err, job.ErrUnsupported) {
		p.log.Warn("the backend keeps no scheduler state: periodic entries do not fire", "db", redact(p.cfg.DB))
		return nil
	}
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	if err := s.Register(p.app.Entries...); err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	if err := s.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	p.sched = s
	return nil
}

// startWorker builds, registers and starts a worker for cfg.
func (p *proc) startWorker(cfg Config) (*generation, error) {
	w := worker.New(p.b, worker.Config{
		Queues: cfg.workerQueues(), StrictPriority: cfg.StrictPriority, Concurrency: cfg.Concurrency,
		LeaseDuration: cfg.Lease, JobTimeout: cfg.JobTimeout, Breakers: cfg.Breakers,
		Middleware: []worker.Middleware{p.rep.middleware}, Observer: p.rep, Logger: p.log,
	})
	if err := p.app.Register(w); err != nil {
		return nil, fmt.Errorf("registering the app's handlers: %w", err)
	}
	if err := w.Start(context.Background()); err != nil {
		return nil, err
	}
	return &generation{w: w, done: make(chan struct{})}, nil
}

// retire stops g fetching; its jobs finish until g.release is called.
// Called with p.mu held.
func (p *proc) retire(g *generation) {
	ctx, release := context.WithCancel(context.Background())
	g.release = release
	p.retired = append(p.retired, g)
	go func() {
		g.err = g.w.Stop(ctx)
		close(g.done)
	}()
}

// quiet stops fetching and lets the running jobs finish (SIGTSTP);
// unquiet fetches again (SIGCONT).
func (p *proc) quiet() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil || p.state != "running" {
		return
	}
	p.log.Info("quiet: no new jobs; running ones finish (SIGCONT resumes)", "running", p.cur.w.Running())
	p.cur.w.Pause()
	p.state = "quiet"
}

func (p *proc) unquiet() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil || p.state != "quiet" {
		return
	}
	p.log.Info("resumed: fetching again")
	p.cur.w.Resume()
	p.state = "running"
}

// drain stops fetching and returns a channel closed once every worker
// has stopped. The caller releases what still runs with releaseAll.
func (p *proc) drain() <-chan struct{} {
	p.mu.Lock()
	if p.cur != nil {
		p.retire(p.cur)
		p.cur = nil
	}
	p.state = "draining"
	gens := slices.Clone(p.retired)
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		for _, g := range gens {
			<-g.done
		}
		close(done)
	}()
	return done
}

// releaseAll ends every drain: the jobs still running are cancelled and
// released so that another worker runs them at once.
func (p *proc) releaseAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range p.retired {
		g.release()
	}
}

// running counts the jobs running in every generation.
func (p *proc) running() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, g := range append(slices.Clone(p.retired), p.cur) {
		if g != nil {
			n += g.w.Running()
		}
	}
	return n
}

// ready is /readyz: taking work, and the backend answers.
func (p *proc) ready(ctx context.Context) error {
	p.mu.Lock()
	state := p.state
	p.mu.Unlock()
	if state != "running" {
		return fmt.Errorf("%s", state)
	}
	return roundTrip(ctx, p.b)
}

// reload reads the configuration again (SIGHUP) and applies what can
// change live. A configuration that does not load changes nothing.
func (p *proc) reload() {
	if p.src == nil {
		p.log.Warn("reload: no config file to read again (the Config came from code)")
		return
	}
	next, err := p.src.load()
	if err != nil {
		p.log.Error("reload refused; the running configuration stays", "err", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	changes := diffConfigs(p.cfg, next)
	if len(changes) == 0 {
		p.log.Info("reload: nothing changed")
		return
	}
	rebuild, reconfigure := false, false
	applied := p.cfg
	for _, c := range changes {
		s, _ := lookup(c.key)
		if !c.live {
			p.log.Warn("reload: change needs a restart; not applied", "key", c.key, "from", c.from, "to", c.to)
			continue
		}
		if err := s.set(&applied, c.to); err != nil { // c.to came from a valid config: never fails
			p.log.Error("reload: applying", "key", c.key, "err", err)
			continue
		}
		rebuild = rebuild || slices.Contains(rebuildKeys, c.key)
		reconfigure = reconfigure || slices.Contains(liveKeys, c.key)
		p.log.Info("reload: applied", "key", c.key, "from", c.from, "to", c.to)
	}
	switch {
	case p.cur == nil: // draining: nothing fetches any more
	case rebuild:
		g, err := p.startWorker(applied)
		if err != nil {
			p.log.Error("reload refused: the new worker did not start; the running one stays", "err", err)
			return
		}
		// The old worker stops fetching now and finishes its jobs
		// under their leases: none is lost or run twice.
		if p.state == "quiet" {
			g.w.Pause()
		}
		p.retire(p.cur)
		p.cur = g
		p.log.Info("reload: a new worker took over fetching", "worker", g.w.ID(), "concurrency", applied.Concurrency, "queues", formatQueues(applied.Queues))
	case reconfigure:
		// The same worker, its slots and queues changed in place: one
		// concurrency cap holds throughout.
		if err := p.cur.w.Reconfigure(worker.LiveConfig{Queues: applied.workerQueues(), StrictPriority: applied.StrictPriority, Concurrency: applied.Concurrency}); err != nil {
			p.log.Error("reload refused: the worker did not take the change; the running configuration stays", "err", err)
			return
		}
		p.log.Info("reload: the worker changed in place", "concurrency", applied.Concurrency, "queues", formatQueues(applied.Queues))
	}
	if err := p.applyLimits(p.cfg.Limits, applied.Limits); err != nil {
		p.log.Error("reload: applying the limits", "err", err)
		applied.Limits = p.cfg.Limits // the next reload tries again
	}
	p.level.Set(applied.LogLevel)
	p.slow.Store(int64(applied.SlowJob))
	p.cfg = applied
	p.forget()
}

// forget drops retired generations that have stopped. Called with p.mu held.
func (p *proc) forget() {
	p.retired = slices.DeleteFunc(p.retired, func(g *generation) bool {
		select {
		case <-g.done:
			if g.err != nil {
				p.log.Warn("a retired worker stopped", "worker", g.w.ID(), "err", g.err)
			}
			return true
		default:
			return false
		}
	})
}

// drainFor is the drain timeout in force.
func (p *proc) drainFor() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg.Drain
}

func (p *proc) close(ctx context.Context) error {
	var errs []error
	if p.sched != nil {
		errs = append(errs, p.sched.Stop(ctx))
	}
	p.mu.Lock()
	p.forget() // logs the drains that released jobs: expected, not an error
	p.mu.Unlock()
	errs = append(errs, p.b.Close())
	return errors.Join(errs...)
}
