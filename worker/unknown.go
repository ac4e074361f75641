package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// A job whose task has no handler on this worker is not the job's fault:
// in a rolling deploy an old worker meets a task only the new code has,
// and `conveyor worker` pointed at an app's database meets every task of
// the app. So the worker gives the job back, without using an attempt or
// a delivery, for a worker that has the handler, and dead-letters it only
// once no worker has taken it for Config.UnknownTaskWindow.
//
// The better fix is not to reserve such jobs at all, but
// backends.ReserveParams has no task filter yet; adding one is a change to
// the backend contract, planned for later. Until then every backend hands
// out jobs of any task and the worker releases the ones it cannot run.

// noHandlerError is what a delivery of a task with no handler on this
// worker fails with. It is the worker's own finding, told apart from a
// handler that returns job.ErrUnknownTask (dispatching by a name of its
// own), which dead-letters as it always did.
type noHandlerError struct{ task, worker string }

func (e *noHandlerError) Error() string {
	return fmt.Sprintf("%v: %q has no handler on worker %s", job.ErrUnknownTask, e.task, e.worker)
}

func (e *noHandlerError) Unwrap() error { return job.ErrUnknownTask }

// noHandler is the error for a delivery of rec that no handler here runs.
// A job that names no task at all cannot be run by any worker, so it is
// dead-lettered at once.
func (w *Worker) noHandler(rec *job.Record) error {
	if rec.Task == "" {
		return fmt.Errorf("%w: the job names no task, so no worker can run it", job.ErrUnknownTask)
	}
	return &noHandlerError{task: rec.Task, worker: w.cfg.ID}
}

// unknownLogEvery is how often the worker logs about one task it has no
// handler for: a backlog of thousands of such jobs makes one line a
// minute, each saying how many jobs it stands for, not a line per job.
const unknownLogEvery = time.Minute

// unknownTasks is the worker's state for jobs of tasks it does not know.
type unknownTasks struct {
	logs logLimiter

	mu      sync.Mutex
	peersAt time.Time // when peers was read; zero: never
	peers   peerTasks
}

// unknownTask decides what becomes of a delivery of rec, whose task has no
// handler here: released for another worker, or dead-lettered once its
// window has passed and no live worker on its queue announces the task.
func (w *Worker) unknownTask(rec *job.Record, now time.Time, ae job.AttemptError, log *slog.Logger) (Outcome, func(context.Context) error) {
	since := unknownSince(rec)
	window := w.cfg.UnknownTaskWindow
	if now.Sub(since) > window && !w.peerKnows(rec.Queue, rec.Task) {
		ae.Error = fmt.Sprintf("%s; waited %s (since %s) for a worker with a handler, and no live worker on queue %s announces one",
			ae.Error, window, since.UTC().Format(time.RFC3339), rec.Queue)
		if ok, more := w.unknown.logs.allow("dead\x00"+rec.Task, now); ok {
			log.Warn("job dead-lettered: no worker has a handler for its task", "window", window, "since", since, "jobs_since_last_line", more)
		}
		return DeadLettered, w.deadLetter(rec, ae)
	}
	d := w.cfg.UnknownTaskDelay
	d += rand.N(d/2 + 1) // spread the releases of many workers and jobs
	if ok, more := w.unknown.logs.allow("release\x00"+rec.Task, now); ok {
		log.Warn("job released: this worker has no handler for its task; a worker that has one will run it",
			"retry_in", d, "dead_after", since.Add(window), "jobs_since_last_line", more)
	}
	return UnknownTask, w.retryAt(rec, now.Add(d), nil)
}

// unknownSince is when rec's window for finding a worker with its handler
// started: its creation, or its last failed attempt if later, which a
// worker with the handler recorded (or a dead letter for this very reason,
// replayed since). A record without a creation time (the conformance suite
// requires one) counts from when it was due.
//
// A job scheduled further ahead than the window is due with its window
// already spent; the record keeps no time of its first due delivery that
// survives the releases, so that needs the same later contract change.
func unknownSince(rec *job.Record) time.Time {
	since := rec.CreatedAt
	if since.IsZero() {
		since = rec.RunAt
	}
	if le := rec.LastError(); le != nil && le.At.After(since) {
		since = le.At
	}
	return since
}

// peerTasks is what the live workers announce: per queue, the tasks some
// worker there has a handler for. Its zero value, for a backend that
// cannot list workers, knows no task: only this worker's own knowledge
// counts.
type peerTasks struct {
	// unsure is set when the list could not be read, or a worker on the
	// queue announces no tasks (a version from before tasks were
	// announced): any task may be known there.
	unsure map[string]bool
	known  map[string]map[string]bool
	failed bool // reading the list failed: assume every task is known
}

func (p *peerTasks) knows(queue, task string) bool {
	return p.failed || p.unsure[queue] || p.known[queue][task]
}

// peerKnows reports whether a live worker other than this one works queue
// and announces a handler for task, from the list of workers read at most
// once a heartbeat. It is asked only for jobs past their window, so it
// costs nothing while jobs are young. When the list cannot be read it
// answers yes: a job is never dead-lettered on a guess.
func (w *Worker) peerKnows(queue, task string) bool {
	u := &w.unknown
	u.mu.Lock()
	defer u.mu.Unlock()
	every := w.cfg.LeaseDuration / 3
	if u.peersAt.IsZero() || time.Since(u.peersAt) >= every {
		ctx, cancel := context.WithTimeout(context.Background(), every)
		u.peers = w.readPeers(ctx)
		cancel()
		u.peersAt = time.Now()
	}
	return u.peers.knows(queue, task)
}

func (w *Worker) readPeers(ctx context.Context) peerTasks {
	infos, err := Workers(ctx, w.b)
	switch {
	case errors.Is(err, job.ErrUnsupported):
		return peerTasks{}
	case err != nil:
		w.log.Warn("reading the list of workers failed; jobs of unknown tasks are kept", "err", err)
		return peerTasks{failed: true}
	}
	p := peerTasks{unsure: map[string]bool{}, known: map[string]map[string]bool{}}
	for _, info := range infos {
		if info.ID == w.cfg.ID {
			continue
		}
		for _, q := range info.Queues {
			if len(info.Tasks) == 0 {
				p.unsure[q] = true
				continue
			}
			if p.known[q] == nil {
				p.known[q] = map[string]bool{}
			}
			for _, t := range info.Tasks {
				p.known[q][t] = true
			}
		}
	}
	return p
}

// taskNames returns the names of the registered tasks, sorted.
func (w *Worker) taskNames() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	names := make([]string, 0, len(w.handlers))
	for name := range w.handlers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// logLimiter lets one log line per key through per interval and counts the
// lines it held back meanwhile, so that the next line can say how many it
// stands for.
type logLimiter struct {
	mu sync.Mutex
	m  map[string]*limitedLine
}

type limitedLine struct {
	next time.Time // before it, lines are held back
	held int
}

// limiterKeys is how many keys a logLimiter keeps before it forgets the
// ones that are quiet: a producer inventing task names cannot grow it
// without bound.
const limiterKeys = 1024

// allow reports whether a line for key may be logged at now and, if so,
// how many lines for key were held back since the previous one.
func (l *logLimiter) allow(key string, now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*limitedLine{}
	}
	e := l.m[key]
	if e == nil {
		if len(l.m) >= limiterKeys {
			for k, old := range l.m {
				if !old.next.After(now) && old.held == 0 {
					delete(l.m, k)
				}
			}
		}
		e = &limitedLine{}
		l.m[key] = e
	}
	if now.Before(e.next) {
		e.held++
		return false, 0
	}
	held, e.held, e.next = e.held, 0, now.Add(unknownLogEvery)
	return true, held
}
