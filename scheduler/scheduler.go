package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// Clock tells the time, as it does for backends. Tests inject one to step
// through ticks, time zones and leader failovers without sleeping.
type Clock = backends.Clock

// Config configures a Scheduler. Zero values mean the stated default.
type Config struct {
	// Tasks are the task definitions entries may name. Required.
	Tasks []queue.Definition
	// ID names this process in the leader lease. Default host-pid.
	ID string
	// Poll is how often the scheduler checks for due ticks and renews its
	// lease. Default 1s.
	Poll time.Duration
	// LeaseFor is how long a leader's lease lasts without renewal: a dead
	// leader is replaced within this time. Default 15s.
	LeaseFor time.Duration
	// UniqueWindow is how long a tick's unique key holds, which bounds how
	// late a second leader could still double-enqueue it. Default 24h.
	UniqueWindow time.Duration
	// Clock tells the time. Default the system clock.
	Clock Clock
	// Logger receives failures. Default slog.Default().
	Logger *slog.Logger
}

// Scheduler fires entries' ticks as jobs.
type Scheduler struct {
	cfg     Config
	client  *queue.Client
	kv      backends.KVStore
	entries *Entries
	tasks   map[string]queue.Definition

	mu       sync.Mutex
	code     []Entry // registered in code, stored at the next round
	stored   bool
	leaseVer int64 // the version of our leader lease, 0 when not leading

	started bool
	stop    chan struct{}
	done    chan struct{}
}

// KV keys.
const (
	leaderKey   = "scheduler/leader"
	entryPrefix = "scheduler/entry/"
)

// New returns a scheduler that enqueues through client and keeps its state
// in the client's backend, which must be a backends.KVStore (every backend
// in this module is); otherwise the error wraps job.ErrUnsupported.
func New(client *queue.Client, cfg Config) (*Scheduler, error) {
	kv, ok := client.Backend().(backends.KVStore)
	if !ok {
		return nil, fmt.Errorf("%w: scheduler state needs a backends.KVStore; %T is not one", job.ErrUnsupported, client.Backend())
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.LeaseFor <= 0 {
		cfg.LeaseFor = 15 * time.Second
	}
	if cfg.UniqueWindow <= 0 {
		cfg.UniqueWindow = 24 * time.Hour
	}
	if cfg.Clock == nil {
		cfg.Clock = backends.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Scheduler{cfg: cfg, client: client, kv: kv, entries: &Entries{kv: kv, clock: cfg.Clock}, tasks: map[string]queue.Definition{}}
	for _, d := range cfg.Tasks {
		s.tasks[d.Name()] = d
	}
	return s, nil
}

// Register adds entries defined in code. An invalid entry (a bad schedule,
// an unknown task) is an error here, not at its first tick. Entries are
// stored at the next round; state (last, next, paused) kept in the backend
// from earlier runs is preserved unless the schedule changed.
func (s *Scheduler) Register(entries ...Entry) error {
	for i := range entries {
		if err := s.validate(&entries[i]); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.code = append(s.code, entries...)
	s.stored = false
	s.mu.Unlock()
	return nil
}

func (s *Scheduler) validate(e *Entry) error {
	if _, err := e.check(); err != nil {
		return err
	}
	if _, ok := s.tasks[e.Task]; !ok {
		return fmt.Errorf("%w: entry %s names task %q, which the scheduler does not know", job.ErrUnknownTask, e.Name, e.Task)
	}
	return nil
}

// Add stores an entry at run time (the CLI's schedule add), replacing the
// definition of one with the same name but keeping its state.
func (s *Scheduler) Add(ctx context.Context, e Entry) error {
	if err := s.validate(&e); err != nil {
		return err
	}
	return s.upsert(ctx, e)
}

// upsert stores e's definition, keeping the stored state unless the
// schedule changed.
func (s *Scheduler) upsert(ctx context.Context, e Entry) error {
	return s.entries.update(ctx, e.Name, true, func(st *EntryState) bool {
		if st.Schedule != e.Schedule {
			st.Next = time.Time{} // recomputed from now
		}
		paused := st.Paused
		st.Entry, st.Paused = e, paused
		return true
	})
}

// Remove deletes an entry.
func (s *Scheduler) Remove(ctx context.Context, name string) error {
	return s.entries.Remove(ctx, name)
}

// Pause stops (or, with paused false, resumes) an entry's ticks. Ticks
// that pass while paused are skipped.
func (s *Scheduler) Pause(ctx context.Context, name string, paused bool) error {
	return s.entries.Pause(ctx, name, paused)
}

// List returns every stored entry with its state.
func (s *Scheduler) List(ctx context.Context) ([]EntryState, error) { return s.entries.List(ctx) }

// Start runs rounds every Poll until Stop or until ctx ends. A second Start
// fails: one scheduler runs one loop (a second would hold a lease of its
// own that Stop never gives up).
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("scheduler: already started")
	}
	s.started = true
	stop, done := make(chan struct{}), make(chan struct{})
	s.stop, s.done = stop, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		t := time.NewTicker(s.cfg.Poll)
		defer t.Stop()
		for {
			if err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Error("scheduler round failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Stop ends the rounds and gives up the leader lease, so another process
// takes over at once.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.stop = nil
	s.mu.Unlock()
	if stop != nil { // started, and not stopped yet
		close(stop)
		<-done
	}
	s.mu.Lock()
	v := s.leaseVer
	s.leaseVer = 0
	s.mu.Unlock()
	if v == 0 {
		return nil
	}
	err := s.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: leaderKey, IfVersion: v})
	if errors.Is(err, job.ErrConflict) {
		return nil // lost it already
	}
	return err
}

// RunOnce is one round at the clock's current time: store the code's
// entries if needed, take or renew the leader lease, and, as leader, fire
// every due tick. Start calls it every Poll; tests call it directly.
func (s *Scheduler) RunOnce(ctx context.Context) error {
	if err := s.storeCode(ctx); err != nil {
		return err
	}
	now := s.cfg.Clock.Now()
	leading, err := s.lead(ctx, now)
	if err != nil || !leading {
		return err
	}
	kvs, err := s.kv.ListKV(ctx, backends.ListKVParams{Prefix: entryPrefix, Now: now})
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	var errs []error
	for i := range kvs {
		if err := s.fire(ctx, &kvs[i], now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Scheduler) storeCode(ctx context.Context) error {
	s.mu.Lock()
	code, stored := s.code, s.stored
	s.mu.Unlock()
	if stored {
		return nil
	}
	for _, e := range code {
		if err := s.upsert(ctx, e); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.stored = true
	s.mu.Unlock()
	return nil
}

// lead takes the leader lease if it is free or renews ours; it reports
// whether we lead this round.
func (s *Scheduler) lead(ctx context.Context, now time.Time) (bool, error) {
	s.mu.Lock()
	ver := s.leaseVer
	s.mu.Unlock()
	v, err := s.kv.PutKV(ctx, backends.PutKVParams{Key: leaderKey, Value: []byte(s.cfg.ID), IfVersion: ver,
		ExpiresAt: now.Add(s.cfg.LeaseFor), Now: now})
	if errors.Is(err, job.ErrConflict) && ver != 0 {
		// Our lease lapsed and someone may have taken it: try afresh.
		v, err = s.kv.PutKV(ctx, backends.PutKVParams{Key: leaderKey, Value: []byte(s.cfg.ID),
			ExpiresAt: now.Add(s.cfg.LeaseFor), Now: now})
	}
	if errors.Is(err, job.ErrConflict) {
		v, err = 0, nil // someone else leads
	}
	s.mu.Lock()
	s.leaseVer = v
	s.mu.Unlock()
	if err != nil {
		return false, fmt.Errorf("scheduler: leader lease: %w", err)
	}
	return v != 0, nil
}

// fire enqueues an entry's due ticks per its misfire policy and moves its
// next time on. The enqueues come first, each under a unique key for its
// tick; the state write is a compare-and-set, so a leader that lost its
// lease meanwhile changes nothing, and a tick enqueued twice is a duplicate.
func (s *Scheduler) fire(ctx context.Context, kv *backends.KV, now time.Time) error {
	name := strings.TrimPrefix(kv.Key, entryPrefix)
	var fired []time.Time
	var enqueueErr error
	err := s.entries.updateFrom(ctx, name, kv, false, func(st *EntryState) bool {
		sched, err := st.Entry.check()
		if err != nil {
			s.cfg.Logger.Error("scheduler: invalid stored entry", "entry", name, "err", err)
			return false
		}
		if st.Next.IsZero() {
			st.Next = sched.Next(now)
			return true
		}
		if st.Next.After(now) {
			return false
		}
		var due []time.Time
		latest, prev := time.Time{}, st.Last
		for t := st.Next; !t.After(now); t = sched.Next(t) {
			latest = t
			// When clocks fall back, a fixed time of day happens twice;
			// it fires once, as with cron.
			if !prev.IsZero() && wall(sched, t) == wall(sched, prev) {
				prev = t
				continue
			}
			prev = t
			due = append(due, t)
			if len(due) > 2*st.CatchUpLimit {
				due = append(due[:0], due[len(due)-st.CatchUpLimit:]...) // only the latest can fire
			}
		}
		var fire []time.Time
		switch {
		case st.Paused || len(due) == 0:
		case st.Misfire == FireOnce:
			fire = due[len(due)-1:]
		case st.Misfire == CatchUp:
			fire = due[max(0, len(due)-st.CatchUpLimit):]
		default: // Skip: only ticks that are on time
			for _, t := range due {
				if now.Sub(t) <= s.grace() {
					fire = append(fire, t)
				}
			}
		}
		for _, t := range fire {
			if err := s.enqueue(ctx, st.Entry, t); err != nil {
				enqueueErr = err
				return false // leave the state: the next round retries
			}
		}
		fired = fire
		st.Last, st.Next = latest, sched.Next(latest)
		return true
	})
	if enqueueErr != nil {
		return enqueueErr
	}
	if err == nil && len(fired) > 0 {
		s.cfg.Logger.Debug("scheduler fired", "entry", name, "ticks", len(fired))
	}
	return err
}

// wall is a tick's local date and time of day in its schedule's zone
// (robfig/cron hands ticks back in the zone of the time it was given).
func wall(sched Schedule, t time.Time) string {
	if spec, ok := sched.(*cron.SpecSchedule); ok && spec.Location != nil {
		t = t.In(spec.Location)
	}
	return t.Format("2006-01-02 15:04:05")
}

// grace is how late a tick may fire under Skip: a few polls.
func (s *Scheduler) grace() time.Duration { return 3 * s.cfg.Poll }

// TickKey is the unique key of an entry's tick.
func TickKey(entry string, tick time.Time) string {
	return "scheduler:" + entry + ":" + strconv.FormatInt(tick.Unix(), 10)
}

func (s *Scheduler) enqueue(ctx context.Context, e Entry, tick time.Time) error {
	def := s.tasks[e.Task]
	if def == nil {
		return fmt.Errorf("%w: entry %s names task %q", job.ErrUnknownTask, e.Name, e.Task)
	}
	opts := &queue.EnqueueOptions{Queue: e.Queue, Priority: e.Priority, UniqueKey: TickKey(e.Name, tick),
		UniqueWindow: s.cfg.UniqueWindow, Headers: map[string]string{"scheduler-entry": e.Name, "scheduler-tick": tick.UTC().Format(time.RFC3339)}}
	if _, err := s.client.EnqueueMany(ctx, def.RawRequest(e.Args, opts)); err != nil {
		return fmt.Errorf("scheduler: entry %s tick %s: %w", e.Name, tick.Format(time.RFC3339), err)
	}
	return nil
}
