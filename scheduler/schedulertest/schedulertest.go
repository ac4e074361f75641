package schedulertest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/scheduler"
)

type pingArgs struct {
	Note string `json:"note"`
}

var ping = queue.NewTask[pingArgs, queue.None]("sched.ping", queue.TaskOptions{Queue: "cron"})

// fakeClock is the injected clock: tests move it, nothing sleeps.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *fakeClock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

// Opener returns a fresh, empty backend for one test.
type Opener func(t *testing.T) backends.Backend

// Run runs the scheduler's durable cases on the backend open returns: two
// schedulers sharing it fire each tick once, a leader that dies is
// replaced without a lost tick, misfire policies, entries that survive
// restarts, pause and remove. Time is a fake clock the cases step.
func Run(t *testing.T, open Opener) {
	cases := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"EachTickOnceWithTwoSchedulers", testEachTickOnce},
		{"FailoverLosesNoTick", testFailover},
		{"MisfirePolicies", testMisfire},
		{"DurableAcrossRestarts", testDurable},
		{"PauseAndRemove", testPause},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, open)
		})
	}
}

// env is one backend shared by any number of schedulers ("processes").
type env struct {
	t     *testing.T
	b     backends.Backend
	c     *queue.Client
	clock *fakeClock
}

func newEnv(t *testing.T, open Opener, start time.Time) *env {
	b := open(t)
	t.Cleanup(func() { _ = b.Close() })
	return &env{t: t, b: b, c: queue.NewClient(b, queue.Config{}), clock: &fakeClock{t: start}}
}

func (e *env) scheduler(id string) *scheduler.Scheduler {
	e.t.Helper()
	s, err := scheduler.New(e.c, scheduler.Config{Tasks: []queue.Definition{ping}, ID: id, Clock: e.clock,
		Poll: time.Second, LeaseFor: 10 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) entry(name, schedule string, m scheduler.Misfire) scheduler.Entry {
	e.t.Helper()
	en, err := scheduler.NewEntry(name, schedule, ping, pingArgs{Note: name})
	if err != nil {
		e.t.Fatal(err)
	}
	en.Misfire = m
	return en
}

func (e *env) round(ss ...*scheduler.Scheduler) {
	e.t.Helper()
	for _, s := range ss {
		if err := s.RunOnce(context.Background()); err != nil {
			e.t.Fatal(err)
		}
	}
}

// ticks returns the ticks enqueued for entry, in order, failing on a
// tick enqueued twice.
func (e *env) ticks(entry string) []time.Time {
	e.t.Helper()
	in := e.b.(backends.Inspector)
	var out []time.Time
	seen := map[string]bool{}
	for _, st := range []job.State{job.Pending, job.Scheduled} {
		cursor := ""
		for {
			page, err := in.ListJobs(context.Background(), backends.ListJobsParams{Queue: "cron", State: st, Cursor: cursor, Limit: 500})
			if err != nil {
				e.t.Fatal(err)
			}
			for _, r := range page.Jobs {
				if r.Headers["scheduler-entry"] != entry {
					continue
				}
				if seen[r.UniqueKey] {
					e.t.Fatalf("tick %s enqueued twice", r.UniqueKey)
				}
				seen[r.UniqueKey] = true
				tick, err := time.Parse(time.RFC3339, r.Headers["scheduler-tick"])
				if err != nil {
					e.t.Fatal(err)
				}
				out = append(out, tick)
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func testEachTickOnce(t *testing.T, open Opener) {
	e := newEnv(t, open, t0)
	a, b := e.scheduler("a"), e.scheduler("b")
	must(t, a.Register(e.entry("every-minute", "* * * * *", scheduler.Skip)))
	must(t, b.Register(e.entry("every-minute", "* * * * *", scheduler.Skip)))
	e.round(a, b)
	for range 10 {
		e.clock.Add(time.Minute)
		e.round(a, b)
		e.round(b, a)
	}
	if got := e.ticks("every-minute"); len(got) != 10 {
		t.Fatalf("%d ticks in 10 minutes: %v", len(got), got)
	}
}

func testFailover(t *testing.T, open Opener) {
	e := newEnv(t, open, t0)
	a, b := e.scheduler("a"), e.scheduler("b")
	for _, s := range []*scheduler.Scheduler{a, b} {
		must(t, s.Register(e.entry("tick", "*/10 * * * * *", scheduler.CatchUp)))
	}
	e.round(a, b) // a leads
	for range 6 {
		e.clock.Add(10 * time.Second)
		e.round(a, b)
	}
	// a dies without a word: only b runs. It takes over once a's lease
	// (10s) has passed, and catches up on the ticks in between.
	for range 6 {
		e.clock.Add(5 * time.Second)
		e.round(b)
	}
	got := e.ticks("tick")
	if len(got) != 9 {
		t.Fatalf("%d ticks over 90s of a 10s schedule with a failover, want 9: %v", len(got), got)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Sub(got[i-1]) != 10*time.Second {
			t.Fatalf("ticks not every 10s (one lost or doubled): %v", got)
		}
	}
}

func testMisfire(t *testing.T, open Opener) {
	e := newEnv(t, open, t0)
	s := e.scheduler("a")
	limited := e.entry("catchup-3", "* * * * *", scheduler.CatchUp)
	limited.CatchUpLimit = 3
	must(t, s.Register(
		e.entry("skip", "* * * * *", scheduler.Skip),
		e.entry("once", "* * * * *", scheduler.FireOnce),
		e.entry("catchup", "* * * * *", scheduler.CatchUp),
		limited,
	))
	e.round(s)
	e.clock.Add(10*time.Minute + 30*time.Second) // ten ticks missed; the latest 30s ago
	e.round(s)
	for entry, want := range map[string]int{"skip": 0, "once": 1, "catchup": 10, "catchup-3": 3} {
		if got := e.ticks(entry); len(got) != want {
			t.Errorf("%s fired %d ticks for 10 missed, want %d", entry, len(got), want)
		}
	}
	// On time again, Skip fires.
	e.clock.Set(t0.Add(11 * time.Minute))
	e.round(s)
	if got := e.ticks("skip"); len(got) != 1 {
		t.Fatalf("skip fired %d on-time ticks, want 1", len(got))
	}
}

// A daily entry fires once a day even when every process restarts each
// hour (River #791): the next fire time is stored, not recomputed.
func testDurable(t *testing.T, open Opener) {
	e := newEnv(t, open, t0)
	entry := e.entry("daily", "0 9 * * *", scheduler.Skip)
	for h := 0; h <= 48; h++ {
		s := e.scheduler("process-" + time.Duration(h).String()) // a new process every hour
		must(t, s.Register(entry))
		e.round(s)
		must(t, s.Stop(context.Background()))
		e.clock.Add(time.Hour)
	}
	got := e.ticks("daily")
	if len(got) != 2 || got[0].Hour() != 9 || got[1].Sub(got[0]) != 24*time.Hour {
		t.Fatalf("daily ticks over 48h of hourly restarts: %v, want 2 at 09:00", got)
	}
}

func testPause(t *testing.T, open Opener) {
	ctx := context.Background()
	e := newEnv(t, open, t0)
	s := e.scheduler("a")
	must(t, s.Add(ctx, e.entry("p", "* * * * *", scheduler.Skip)))
	e.round(s)
	must(t, s.Pause(ctx, "p", true))
	e.clock.Add(time.Minute)
	e.round(s)
	must(t, s.Pause(ctx, "p", false))
	e.clock.Add(time.Minute)
	e.round(s)
	if got := e.ticks("p"); len(got) != 1 {
		t.Fatalf("%d ticks, want 1 (the paused one skipped)", len(got))
	}
	list, err := s.List(ctx)
	must(t, err)
	if len(list) != 1 || list[0].Name != "p" || list[0].Last.IsZero() || !list[0].Next.After(list[0].Last) {
		t.Fatalf("List = %+v", list)
	}
	must(t, s.Remove(ctx, "p"))
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("after Remove: %+v", list)
	}
	if err := s.Pause(ctx, "p", true); !errors.Is(err, job.ErrNotFound) {
		t.Fatalf("Pause(removed) = %v, want ErrNotFound", err)
	}
}

// Across both DST changes of 2026 in New York: a daily 01:30 entry fires
// once on the day 01:30 happens twice, and a daily 02:30 entry does not
// fire on the day 02:30 does not exist (robfig/cron skips it, as asynq
// does), firing once on every other day. It steps minute by minute over
// eight days, so run it on a fast backend: the calendar is the scheduler's,
// not the backend's.
func RunCalendar(t *testing.T, open Opener) {
	e := newEnv(t, open, time.Date(2026, 3, 6, 12, 0, 0, 0, time.UTC))
	s := e.scheduler("a")
	must(t, s.Register(
		e.entry("two-thirty", "CRON_TZ=America/New_York 30 2 * * *", scheduler.Skip),
		e.entry("one-thirty", "CRON_TZ=America/New_York 30 1 * * *", scheduler.Skip),
	))
	step := func(until time.Time) {
		for e.clock.Now().Before(until) {
			e.round(s)
			e.clock.Add(time.Minute)
		}
	}
	step(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)) // spring forward on March 8
	step0 := len(e.ticks("two-thirty"))
	e.clock.Set(time.Date(2026, 10, 30, 12, 0, 0, 0, time.UTC))
	e.round(s) // a long gap: Skip drops the missed days
	base := len(e.ticks("one-thirty"))
	step(time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)) // fall back on November 1
	ny, _ := time.LoadLocation("America/New_York")
	days := map[string]int{}
	for _, tk := range e.ticks("one-thirty")[base:] {
		days[tk.In(ny).Format("2006-01-02")]++
	}
	if len(days) != 4 {
		t.Fatalf("01:30 fired on days %v, want Oct 31 to Nov 3", days)
	}
	for d, n := range days {
		if n != 1 {
			t.Fatalf("01:30 fired %d times on %s (fall back)", n, d)
		}
	}
	if step0 != 3 {
		t.Fatalf("02:30 fired %d times from March 7 to 10, want 3 (none on the 8th, which has no 02:30): %v", step0, e.ticks("two-thirty"))
	}
	for _, tk := range e.ticks("two-thirty")[:step0] {
		if local := tk.In(ny); local.Day() == 8 || local.Format("15:04") != "02:30" {
			t.Fatalf("02:30 fired at %s", local)
		}
	}
}
