package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// childEnv carries a supervised worker process's slot, "3/4": its
// presence makes Main run the worker instead of supervising again.
const childEnv = "CONVEYOR_DAEMON_CHILD"

// slot is a worker process's place under its supervisor.
type slot struct{ index, total int }

func (s slot) String() string { return fmt.Sprintf("worker %d/%d", s.index, s.total) }

func childSlot() (slot, bool) {
	v, ok := os.LookupEnv(childEnv)
	if !ok {
		return slot{}, false
	}
	var s slot
	a, b, _ := strings.Cut(v, "/")
	s.index, _ = strconv.Atoi(a)
	s.total, _ = strconv.Atoi(b)
	return s, true
}

// childHTTP is the address worker process i serves on: the supervisor's
// port plus i, so that every process's metrics can be scraped.
func childHTTP(addr string, i int) string {
	host, port, err := net.SplitHostPort(addr)
	if addr == "" || err != nil {
		return ""
	}
	n, err := strconv.Atoi(port)
	if err != nil || n == 0 {
		return net.JoinHostPort(host, "0")
	}
	return net.JoinHostPort(host, strconv.Itoa(n+i))
}

// Backoff of a worker process that died: doubling from the first to the
// last, back to the first once a process has lived for backoffReset.
const (
	backoffFirst = 100 * time.Millisecond
	backoffLast  = 10 * time.Second
	backoffReset = 30 * time.Second
)

// watchRecycle makes a supervised worker process drain and end with
// ErrRecycled after max-jobs finished jobs or past max-rss.
func (p *proc) watchRecycle(ctx context.Context, cfg Config) {
	recycle := func(err error) {
		select {
		case p.stopWith <- err:
		default: // already stopping
		}
	}
	if cfg.MaxJobs > 0 {
		p.rep.onFinished = func(n int64) {
			if n >= int64(cfg.MaxJobs) {
				recycle(fmt.Errorf("%w: %d jobs finished, max-jobs %d", ErrRecycled, n, cfg.MaxJobs))
			}
		}
	}
	if cfg.MaxRSS > 0 {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				rss, err := residentBytes()
				if err != nil {
					p.log.Warn("max-rss: cannot read resident memory; not watching it", "err", err)
					return
				}
				if rss > cfg.MaxRSS {
					recycle(fmt.Errorf("%w: resident memory %d MiB past max-rss %d MiB", ErrRecycled, rss>>20, cfg.MaxRSS>>20))
					return
				}
			}
		}()
	}
}

// residentBytes reads this process's resident set size from
// /proc/self/statm (its second field, in pages).
func residentBytes() (int64, error) {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/self/statm: %q", data)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/self/statm: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// supervisor runs cfg.Processes worker processes, each this binary run
// again with the same arguments and its slot in childEnv.
type supervisor struct {
	app  App
	cfg  Config
	log  *slog.Logger
	exe  string
	args []string
	out  io.Writer // the worker processes' stdout and stderr

	mu       sync.Mutex
	procs    map[int]*os.Process // by slot index, while running
	stopping bool
}

func supervise(ctx context.Context, app App, src *sources, cfg Config, log *slog.Logger, level *slog.LevelVar, stderr io.Writer) error {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, allSignals...)
	defer signal.Stop(sigs)
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("processes: finding this binary to run it again: %w", err)
	}
	// The supervisor checks the backend too: a bad URL is one line here,
	// not a line from every worker process restarting in a loop.
	b, err := openBackend(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer b.Close()
	s := &supervisor{app: app, cfg: cfg, log: log, exe: exe, args: os.Args[1:], out: stderr, procs: map[int]*os.Process{}}
	if cfg.HTTP != "" {
		at, stop, err := healthServer(cfg.HTTP, func(ctx context.Context) error {
			if s.isStopping() {
				return errors.New("draining")
			}
			return roundTrip(ctx, b)
		}, nil, nil) // the producer API: on each worker process's own port
		if err != nil {
			return err
		}
		defer stop()
		log.Info("serving /healthz and /readyz", "addr", at)
	}
	var wg sync.WaitGroup
	for i := 1; i <= cfg.Processes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.keep(slot{index: i, total: cfg.Processes})
		}()
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	log.Info("supervisor started", "pid", os.Getpid(), "processes", cfg.Processes)

	var kill <-chan time.Time
	stop := func(why string) {
		first := !s.isStopping()
		s.mu.Lock()
		s.stopping = true
		s.mu.Unlock()
		log.Info("stopping the worker processes", "why", why, "first", first)
		s.signalAll(syscall.SIGTERM)
		if first {
			// Past its drain and the worker's grace for handlers that
			// ignore cancellation, a worker process is killed.
			kill = time.After(cfg.Drain + 10*time.Second)
		}
	}
	done := ctx.Done()
	for {
		select {
		case <-all:
			log.Info("supervisor stopped")
			return nil
		case <-done:
			done = nil
			stop("context ended")
		case <-kill:
			log.Error("worker processes outlived their drain; killing them")
			s.signalAll(syscall.SIGKILL)
		case sig := <-sigs:
			switch {
			case isStop(sig):
				stop(sig.String())
			case sig == syscall.SIGTSTP, sig == syscall.SIGCONT:
				log.Info("passing the signal to the worker processes", "signal", sig.String())
				s.signalAll(sig.(syscall.Signal))
			case sig == syscall.SIGHUP:
				s.reload(src, level)
			}
		}
	}
}

func (s *supervisor) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// reload checks the configuration before passing SIGHUP on, so that a
// broken file is refused once, here.
func (s *supervisor) reload(src *sources, level *slog.LevelVar) {
	if src == nil {
		s.log.Warn("reload: no config file to read again (the Config came from code)")
		return
	}
	next, err := src.load()
	if err != nil {
		s.log.Error("reload refused; the running configuration stays", "err", err)
		return
	}
	for _, c := range diffConfigs(s.cfg, next) {
		if !c.live {
			s.log.Warn("reload: change needs a restart; not applied", "key", c.key, "from", c.from, "to", c.to)
		}
	}
	level.Set(next.LogLevel)
	s.log.Info("reload: passing SIGHUP to the worker processes")
	s.signalAll(syscall.SIGHUP)
}

func (s *supervisor) signalAll(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		_ = p.Signal(sig)
	}
}

// keep runs the worker process of one slot until the supervisor stops,
// starting it again when it ends.
func (s *supervisor) keep(sl slot) {
	backoff := backoffFirst
	for {
		start := time.Now()
		state, err := s.runChild(sl)
		if s.isStopping() {
			s.log.Info("worker process ended", "slot", sl.String(), "exit", describe(state, err))
			return
		}
		if err == nil && state.ExitCode() == exitRecycled {
			s.log.Info("worker process recycled; starting its replacement", "slot", sl.String())
			backoff = backoffFirst
			continue
		}
		if time.Since(start) > backoffReset {
			backoff = backoffFirst
		}
		s.log.Error("worker process died; restarting it", "slot", sl.String(), "exit", describe(state, err), "backoff", backoff)
		time.Sleep(backoff) // a timed wait between restarts, not a test's sleep
		backoff = min(2*backoff, backoffLast)
		if s.isStopping() {
			return
		}
	}
}

func describe(state *os.ProcessState, err error) string {
	if err != nil {
		return err.Error()
	}
	return state.String()
}

// runChild starts one worker process and waits for it. Its argv[0] names
// it in ps: "app: worker 3/4 queues=email,default".
func (s *supervisor) runChild(sl slot) (*os.ProcessState, error) {
	names := make([]string, len(s.cfg.Queues))
	for i, q := range s.cfg.Queues {
		names[i] = q.Name
	}
	title := fmt.Sprintf("%s: %s queues=%s", s.app.name(), sl, strings.Join(names, ","))
	cmd := &exec.Cmd{
		Path:   s.exe,
		Args:   append([]string{title}, s.args...),
		Env:    append(os.Environ(), childEnv+"="+strconv.Itoa(sl.index)+"/"+strconv.Itoa(sl.total)),
		Stdout: s.out,
		Stderr: s.out,
		SysProcAttr: &syscall.SysProcAttr{
			// Its own process group: a terminal's ^C reaches the
			// supervisor alone, which passes one SIGTERM on; a second
			// one straight from the terminal would cut the drain short.
			Setpgid: true,
			// A supervisor that dies takes its workers down, drained.
			Pdeathsig: syscall.SIGTERM,
		},
	}
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return nil, errors.New("not started: stopping")
	}
	err := cmd.Start()
	if err == nil {
		s.procs[sl.index] = cmd.Process
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	s.log.Info("worker process started", "slot", sl.String(), "pid", cmd.Process.Pid)
	err = cmd.Wait()
	s.mu.Lock()
	delete(s.procs, sl.index)
	s.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = nil
	}
	return cmd.ProcessState, err
}
