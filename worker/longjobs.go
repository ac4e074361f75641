package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// The long-job toolkit: progress, checkpoints and job logs kept with the
// job (backends.Annotator, or the KVStore fallback), and handlers that
// ignore their cancellation abandoned after Config.CancelGrace.

// Abandoned is the outcome of a delivery whose handler ignored its
// cancellation (timeout, cancel request, lost lease, shutdown) for longer
// than Config.CancelGrace: the worker recorded what the cancellation calls
// for (a failed attempt for a timeout, the release at shutdown, the
// cancel), freed its slot and stopped extending its lease, and left the
// goroutine running. What the goroutine returns later is refused by the
// lease fencing and logged.
const Abandoned Outcome = "abandoned"

// ErrNotInJob: a long-job function was called with a context that is not
// a job handler's.
var ErrNotInJob = errors.New("conveyor: not called from a job handler")

type longJobKey struct{}

// longJob is one delivery's long-job state. Every delivery has one (the
// watchdog needs it); the notes part costs nothing until a handler
// reports progress, checkpoints or logs.
type longJob struct {
	w   *Worker
	rec *job.Record

	tracked     bool      // counted in w.jobs (started by startJob, not WorkDue)
	untrackOnce sync.Once // w.jobs.Done once: at the end, or when abandoned

	mu          sync.Mutex
	returned    bool        // the handler returned
	abandoned   bool        // the watchdog gave up on it
	reported    bool        // the Observer heard this delivery's outcome
	over        bool        // no more notes from this delivery: finished, abandoned or lease lost
	cancelledAt time.Time   // when the handler's context ended
	grace       *time.Timer // the watchdog, once the context ended
	progress    *job.Progress
	logs        []job.LogLine
	logBytes    int
	dropped     int
	lastWrite   time.Time
	flush       *time.Timer // the throttled write, when one is due
	checkpoint  []byte      // the latest checkpoint, once read or written
	loaded      bool

	wmu sync.Mutex // one notes write at a time, in order
}

// longJobFor returns the delivery's state carried by ctx (startJob puts it
// there), or a new one in a context that carries it.
func (w *Worker) longJobFor(ctx context.Context, rec *job.Record) (context.Context, *longJob) {
	if l, ok := ctx.Value(longJobKey{}).(*longJob); ok && l.rec == rec {
		return ctx, l
	}
	l := &longJob{w: w, rec: rec}
	return context.WithValue(ctx, longJobKey{}, l), l
}

func fromContext(ctx context.Context) (*longJob, error) {
	l, ok := ctx.Value(longJobKey{}).(*longJob)
	if !ok {
		return nil, ErrNotInJob
	}
	return l, nil
}

// watch arms the watchdog: once ctx ends while the handler runs, abandon
// is called after Config.CancelGrace unless the handler returned by then.
// The returned func tells it the handler returned.
func (l *longJob) watch(ctx context.Context, abandon func(ignored time.Duration)) func() {
	grace := l.w.cfg.CancelGrace
	stop := func() bool { return false }
	if grace > 0 {
		stop = context.AfterFunc(ctx, func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.returned {
				return
			}
			l.cancelledAt = time.Now()
			l.grace = time.AfterFunc(grace, func() {
				l.mu.Lock()
				if l.returned || l.abandoned {
					l.mu.Unlock()
					return
				}
				l.abandoned = true
				ignored := time.Since(l.cancelledAt)
				l.mu.Unlock()
				abandon(ignored)
			})
		})
	}
	return func() {
		stop()
		l.mu.Lock()
		l.returned = true
		if l.grace != nil {
			l.grace.Stop()
		}
		l.mu.Unlock()
	}
}

// report claims the Observer's one report of this delivery.
func (l *longJob) report() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := !l.reported
	l.reported = true
	return first
}

func (l *longJob) isAbandoned() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.abandoned
}

// abandon records the outcome a handler's cancellation calls for while
// the handler still runs, frees its slot and stops its heartbeats. The
// job's notes are flagged (job.Notes.IgnoredCancel) first, while the lease
// still holds.
func (w *Worker) abandon(ctx context.Context, jctx context.Context, rec *job.Record, h *handler, l *longJob, ignored time.Duration, ran time.Duration) {
	cause := context.Cause(jctx)
	w.log.Warn("handler ignored its cancellation past the grace period; abandoned: its outcome is recorded as the cancellation calls for, its slot freed, and what it returns later is discarded",
		"job", rec.ID, "task", rec.Task, "queue", rec.Queue, "cause", cause, "ignored_for", ignored.Round(time.Millisecond))
	fctx, cancel := context.WithTimeout(context.Background(), w.cfg.LeaseDuration/3)
	err := l.send(fctx, nil, &job.IgnoredCancel{At: time.Now(), Cause: cause.Error(), For: ignored, Worker: w.cfg.ID})
	cancel()
	if err != nil && !errors.Is(err, job.ErrLeaseLost) && !errors.Is(err, job.ErrUnsupported) {
		w.log.Warn("flagging the abandoned job failed", "job", rec.ID, "err", err)
	}
	w.finish(ctx, rec, h, nil, fmt.Errorf("%w (the handler ignored it for %s and was abandoned)", cause, ignored.Round(time.Millisecond)), ran)
	l.untrack() // Stop no longer waits for it
}

// untrack marks the delivery done for Stop's wait, once.
func (l *longJob) untrack() {
	if l.tracked {
		l.untrackOnce.Do(l.w.jobs.Done)
	}
}

// end closes the delivery's notes: the pending progress and log lines are
// written (with ctx; nil: dropped, the lease is gone) and later calls fail.
func (l *longJob) end(ctx context.Context) {
	l.mu.Lock()
	if l.flush != nil {
		l.flush.Stop()
		l.flush = nil
	}
	l.mu.Unlock()
	// Sent even when nothing is pending here: a throttled write that took
	// the pending notes may still be in flight, and send waits for it
	// (l.wmu), so it lands before the outcome ends the lease.
	if ctx != nil {
		if err := l.send(ctx, nil, nil); err != nil && !errors.Is(err, job.ErrLeaseLost) {
			l.w.log.Warn("writing the job's last progress and log lines failed", "job", l.rec.ID, "err", err)
		}
	}
	l.mu.Lock()
	l.over = true
	l.progress, l.logs, l.logBytes, l.dropped = nil, nil, 0, 0
	l.mu.Unlock()
}

// store is where notes go: the backend's Annotator, else its KVStore.
func (w *Worker) store() (backends.Annotator, backends.KVStore, error) {
	if a, ok := w.b.(backends.Annotator); ok {
		return a, nil, nil
	}
	if kv, ok := w.b.(backends.KVStore); ok {
		return nil, kv, nil
	}
	return nil, nil, fmt.Errorf("%w: job notes need a backends.Annotator or a KVStore, %T has neither", job.ErrUnsupported, w.b)
}

// send writes the pending progress and log lines with cp (nil: no new
// checkpoint) and ic, one write at a time. A lost lease ends the notes.
func (l *longJob) send(ctx context.Context, cp []byte, ic *job.IgnoredCancel) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	if l.over {
		l.mu.Unlock()
		return fmt.Errorf("%w: job %s: this delivery is over", job.ErrLeaseLost, l.rec.ID)
	}
	if l.progress == nil && len(l.logs) == 0 && l.dropped == 0 && cp == nil && ic == nil {
		l.mu.Unlock()
		return nil // nothing to write
	}
	a, kv, err := l.w.store()
	if err != nil {
		l.mu.Unlock()
		return err
	}
	p := backends.AnnotateParams{
		Lease: l.rec.Lease, Progress: l.progress, Checkpoint: cp, Logs: l.logs, LogsDropped: l.dropped,
		KeepLogs: l.w.cfg.JobLogLines, KeepLogBytes: l.w.cfg.JobLogBytes, IgnoredCancel: ic,
	}
	l.progress, l.logs, l.logBytes, l.dropped = nil, nil, 0, 0
	l.lastWrite = time.Now()
	if l.flush != nil { // what it would write goes now
		l.flush.Stop()
		l.flush = nil
	}
	l.mu.Unlock()
	if a != nil {
		err = a.Annotate(ctx, p)
	} else {
		err = backends.AnnotateKV(ctx, kv, l.rec.Deliveries, p, time.Now())
	}
	if errors.Is(err, job.ErrLeaseLost) {
		l.mu.Lock()
		l.over = true
		l.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("job %s notes: %w", l.rec.ID, err)
	}
	if cp != nil {
		l.mu.Lock()
		l.checkpoint, l.loaded = cp, true
		l.mu.Unlock()
	}
	return nil
}

// schedule arms the throttled write for pending notes: at once if the
// last write is ProgressEvery old, else when it will be. The caller
// holds l.mu.
func (l *longJob) schedule() {
	if l.flush != nil || l.over {
		return
	}
	d := time.Until(l.lastWrite.Add(l.w.cfg.ProgressEvery))
	l.flush = time.AfterFunc(max(d, 0), func() {
		ctx, cancel := context.WithTimeout(context.Background(), l.w.cfg.LeaseDuration/3)
		defer cancel()
		if err := l.send(ctx, nil, nil); err != nil && !errors.Is(err, job.ErrLeaseLost) {
			l.w.log.Warn("writing the job's progress and log lines failed; the next write carries them", "job", l.rec.ID, "err", err)
		}
	})
}

// Progress reports how far the running job is. The worker writes it to
// the backend at most once per Config.ProgressEvery per job (the first at
// once, the latest always, also at the end), so a handler may call it in
// a tight loop. p.At defaults to now. It fails with ErrNotInJob outside a
// handler, job.ErrUnsupported on a backend with neither an Annotator nor
// a KVStore, and job.ErrLeaseLost once the delivery is over.
func Progress(ctx context.Context, p job.Progress) error {
	l, err := fromContext(ctx)
	if err != nil {
		return err
	}
	if _, _, err := l.w.store(); err != nil {
		return err
	}
	if p.At.IsZero() {
		p.At = time.Now()
	}
	p.Output = append([]byte(nil), p.Output...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.over {
		return fmt.Errorf("%w: job %s: this delivery is over", job.ErrLeaseLost, l.rec.ID)
	}
	l.progress = &p
	l.schedule()
	return nil
}

// Checkpoint stores v (as JSON) as the job's checkpoint, at once and under
// the job's lease, with any pending progress and log lines: when the job
// runs again (a retry, a re-delivery after a crash, a resume after a
// drain) LastCheckpoint returns it. It fails with job.ErrLeaseLost when
// this delivery no longer holds the job: its work since the last
// checkpoint belongs to the new holder, so stop.
func Checkpoint(ctx context.Context, v any) error {
	l, err := fromContext(ctx)
	if err != nil {
		return err
	}
	cp, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	return l.send(ctx, cp, nil)
}

// LastCheckpoint returns the job's latest checkpoint, written by this
// delivery or an earlier one, and whether there is one. On the KVStore
// fallback the first read also claims the notes for this delivery, so
// that an earlier delivery still running can no longer write them.
func LastCheckpoint[T any](ctx context.Context) (T, bool, error) {
	var v T
	l, err := fromContext(ctx)
	if err != nil {
		return v, false, err
	}
	cp, err := l.lastCheckpoint(ctx)
	if err != nil || cp == nil {
		return v, false, err
	}
	if err := json.Unmarshal(cp, &v); err != nil {
		return v, false, fmt.Errorf("decode checkpoint of job %s as %T: %w", l.rec.ID, v, err)
	}
	return v, true, nil
}

func (l *longJob) lastCheckpoint(ctx context.Context) ([]byte, error) {
	l.mu.Lock()
	cp, loaded := l.checkpoint, l.loaded
	l.mu.Unlock()
	if loaded {
		return cp, nil
	}
	a, kv, err := l.w.store()
	if err != nil {
		return nil, err
	}
	var n job.Notes
	if a != nil {
		n, err = a.Notes(ctx, backends.NotesParams{JobID: l.rec.ID})
	} else {
		n, err = backends.ClaimKV(ctx, kv, l.rec.Lease, l.rec.Deliveries, time.Now())
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint of job %s: %w", l.rec.ID, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.loaded { // a Checkpoint meanwhile is newer
		l.checkpoint, l.loaded = n.Checkpoint, true
	}
	return l.checkpoint, nil
}

// Logger returns the running job's logger: each line at Info or above is
// kept with the job (the newest Config.JobLogLines lines of at most
// Config.JobLogBytes, older ones dropped and counted), written with the
// progress (at most once per ProgressEvery, and at the end); every line
// also goes to the worker's Logger, with the job's ID and task. Outside a
// handler it is slog.Default(). Where notes are unsupported, lines only
// go to the worker's Logger.
func Logger(ctx context.Context) *slog.Logger {
	l, err := fromContext(ctx)
	if err != nil {
		return slog.Default()
	}
	fwd := l.w.log.With("job", l.rec.ID, "task", l.rec.Task).Handler()
	_, _, nerr := l.w.store()
	return slog.New(&jobLogHandler{l: l, fwd: fwd, keep: nerr == nil})
}

// jobLogHandler keeps records as job.LogLine and passes them on to fwd.
type jobLogHandler struct {
	l      *longJob
	fwd    slog.Handler
	keep   bool
	prefix string // open groups, "g1.g2."
	attrs  string // attributes added by WithAttrs, in text form
}

func (h *jobLogHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return (h.keep && lv >= slog.LevelInfo) || h.fwd.Enabled(ctx, lv)
}

func (h *jobLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.keep && r.Level >= slog.LevelInfo {
		var sb strings.Builder
		sb.WriteString(h.attrs)
		r.Attrs(func(a slog.Attr) bool {
			appendAttr(&sb, h.prefix, a)
			return true
		})
		h.l.addLog(job.LogLine{At: r.Time, Level: r.Level.String(), Msg: r.Message, Attrs: sb.String()})
	}
	if h.fwd.Enabled(ctx, r.Level) {
		return h.fwd.Handle(ctx, r)
	}
	return nil
}

func (h *jobLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	var sb strings.Builder
	sb.WriteString(h.attrs)
	for _, a := range as {
		appendAttr(&sb, h.prefix, a)
	}
	c.attrs = sb.String()
	c.fwd = h.fwd.WithAttrs(as)
	return &c
}

func (h *jobLogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	c.fwd = h.fwd.WithGroup(name)
	return &c
}

// appendAttr writes a as slog's text handler would: key=value, quoted
// when needed, groups flattened with dots.
func appendAttr(sb *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			appendAttr(sb, p, g)
		}
		return
	}
	if sb.Len() > 0 {
		sb.WriteByte(' ')
	}
	sb.WriteString(prefix + a.Key)
	sb.WriteByte('=')
	v := a.Value.String()
	if v == "" || strings.ContainsAny(v, " =\"\n\t") {
		v = strconv.Quote(v)
	}
	sb.WriteString(v)
}

// addLog buffers a line for the next write, dropping the oldest buffered
// ones past the bounds, so a handler logging without end holds the
// worker's memory to those bounds.
func (l *longJob) addLog(line job.LogLine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.over {
		return
	}
	l.logs = append(l.logs, line)
	l.logBytes += line.Size()
	for len(l.logs) > 0 && (len(l.logs) > l.w.cfg.JobLogLines || l.logBytes > l.w.cfg.JobLogBytes) {
		l.logBytes -= l.logs[0].Size()
		l.logs[0] = job.LogLine{} // let its strings go
		l.logs = l.logs[1:]
		l.dropped++
	}
	l.schedule()
}

// Draining returns a channel closed when the worker running the job
// begins to drain (Stop), once it takes no more jobs: a handler looping
// over work of its own stops at a good point, checkpoints and returns an
// error wrapping ErrShutdown, and the job is released for another worker
// without using an attempt (not this one, which fetches no more). Iterate
// does this after each batch. Outside a handler the channel is never
// closed.
func Draining(ctx context.Context) <-chan struct{} {
	l, err := fromContext(ctx)
	if err != nil {
		return nil
	}
	return l.w.drain
}
