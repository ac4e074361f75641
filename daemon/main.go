package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conveyorhq/conveyor/httpapi"
	"github.com/conveyorhq/conveyor/queue"
)

// ErrRecycled ends a supervised worker process that reached max-jobs or
// max-rss, after its drain; ExitCode maps it to the code its supervisor
// replaces it for without backoff.
var ErrRecycled = errors.New("daemon: worker process recycled")

// Exit codes (ExitCode).
const (
	exitError    = 1
	exitConfig   = 2
	exitRecycled = 3
)

// ExitCode is the process exit code for what Main returned: 0 for nil or
// a help request, 2 for bad configuration, 3 for a recycled worker
// process, 1 for anything else.
func ExitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrConfig):
		return exitConfig
	case errors.Is(err, ErrRecycled):
		return exitRecycled
	}
	return exitError
}

// Main runs the worker daemon for app with the command-line arguments
// args (flags after `worker`), the environment and the config file they
// name, until ctx ends or a signal stops it. It returns a clear error
// naming the key or URL for bad configuration, never panics.
func Main(ctx context.Context, app App, args []string, stdout, stderr io.Writer) error {
	return unpanicked(func() error {
		src, err := parseFlags(app.name(), args, stdout, os.LookupEnv)
		if err != nil {
			return err
		}
		cfg, err := src.load()
		if err != nil {
			return err
		}
		return run(ctx, app, &src, cfg, stderr)
	})
}

// Run runs the worker daemon for app with a configuration built in code:
// what Main does after reading its sources. Zero fields take their
// defaults; SIGHUP has no file to read again and changes nothing.
func Run(ctx context.Context, app App, cfg Config) error {
	return unpanicked(func() error { return run(ctx, app, nil, withDefaults(cfg), os.Stderr) })
}

// unpanicked turns a panic in the daemon's own goroutine (an App.Register
// that panics, say) into an error; handlers' panics are the worker's.
func unpanicked(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("daemon: panic: %v", v)
		}
	}()
	return f()
}

// withDefaults fills the zero fields of c with the defaults.
func withDefaults(c Config) Config {
	d := Defaults()
	zero := Config{}
	for _, s := range settings {
		if s.get(&c) == s.get(&zero) {
			_ = s.set(&c, s.get(&d))
		}
	}
	return c
}

func (a App) name() string {
	if a.Name == "" {
		return "conveyor"
	}
	return a.Name
}

func run(ctx context.Context, app App, src *sources, cfg Config, stderr io.Writer) error {
	if app.Register == nil {
		return fmt.Errorf("%w: App.Register is nil: the app registers no handlers", ErrConfig)
	}
	child, isChild := childSlot()
	if isChild {
		cfg.Processes = 0
		cfg.HTTP = childHTTP(cfg.HTTP, child.index)
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	log := newLogger(cfg.LogFormat, level, stderr)
	if isChild {
		log = log.With("process", child.String())
	}
	routeDriverLogs(log)
	if src != nil {
		// Main owns the process: handlers logging through slog's default
		// logger get the configured format, level and process name.
		slog.SetDefault(log)
	}
	if cfg.Processes > 0 {
		return supervise(ctx, app, src, cfg, log.With("process", "supervisor"), level, stderr)
	}
	return serve(ctx, app, src, cfg, log, level, isChild)
}

func newLogger(format string, level *slog.LevelVar, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Signals the daemon handles. SIGTSTP would stop the process by default;
// caught, it means quiet.
var (
	stopSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT}
	allSignals  = append([]os.Signal{syscall.SIGHUP, syscall.SIGTSTP, syscall.SIGCONT}, stopSignals...)
)

func isStop(s os.Signal) bool { return s == syscall.SIGTERM || s == syscall.SIGINT }

// serve runs one worker process until a stop signal, ctx's end or a
// recycle, then drains.
func serve(ctx context.Context, app App, src *sources, cfg Config, log *slog.Logger, level *slog.LevelVar, supervised bool) error {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, allSignals...)
	defer signal.Stop(sigs)

	var reg *prometheus.Registry
	if cfg.HTTP != "" {
		reg = prometheus.NewRegistry()
	}
	p, err := newProc(ctx, app, src, cfg, log, level, reg)
	if err != nil {
		return err
	}
	if cfg.HTTP != "" {
		var api http.Handler
		if len(app.Tasks) > 0 {
			if api, err = httpapi.New(httpapi.Config{Client: queue.NewClient(p.b, queue.Config{}), Tasks: app.Tasks,
				BearerToken: cfg.APIToken, Logger: log}); err != nil {
				_ = p.close(ctx)
				return err
			}
		}
		at, stop, err := healthServer(cfg.HTTP, p.ready, reg, api)
		if err != nil {
			_ = p.close(ctx)
			return err
		}
		defer stop()
		log.Info("serving /healthz, /readyz, /metrics and the producer API at /v1/", "addr", at)
	}
	if supervised {
		p.watchRecycle(ctx, cfg)
	}
	g, err := p.startWorker(cfg)
	if err != nil {
		_ = p.close(ctx)
		return err
	}
	p.mu.Lock()
	p.cur = g
	p.mu.Unlock()
	log.Info("worker started", "worker", g.w.ID(), "pid", os.Getpid(), "db", redact(cfg.DB),
		"queues", formatQueues(cfg.Queues), "concurrency", cfg.Concurrency)

	var reason error
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case reason = <-p.stopWith:
			break wait
		case s := <-sigs:
			switch {
			case isStop(s):
				break wait
			case s == syscall.SIGHUP:
				p.reload()
			case s == syscall.SIGTSTP:
				p.quiet()
			case s == syscall.SIGCONT:
				p.unquiet()
			}
		}
	}
	drainFor := p.drainFor()
	log.Info("draining: no new jobs; running ones may finish", "drain", drainFor, "running", p.running())
	done := p.drain()
	deadline := time.NewTimer(drainFor)
	defer deadline.Stop()
drain:
	for {
		select {
		case <-done:
			break drain
		case <-deadline.C:
			log.Warn("drain timeout: cancelling and releasing the running jobs", "running", p.running())
			p.releaseAll()
		case s := <-sigs:
			if isStop(s) {
				log.Warn("second stop signal: cancelling and releasing the running jobs now", "running", p.running())
				p.releaseAll()
			}
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := p.close(cctx); err != nil {
		log.Warn("closing", "err", err)
	}
	log.Info("stopped", "reason", stopReason(reason))
	return reason
}

func stopReason(err error) string {
	if err == nil {
		return "signal"
	}
	return err.Error()
}
