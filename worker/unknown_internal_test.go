package worker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// One line per key per unknownLogEvery; the next line says how many were
// held back meanwhile.
func TestLogLimiterOneLinePerInterval(t *testing.T) {
	var l logLimiter
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		key      string
		at       time.Duration
		wantOK   bool
		wantHeld int
	}{
		{"a", 0, true, 0},
		{"a", time.Second, false, 0},
		{"b", time.Second, true, 0}, // another task has its own line
		{"a", unknownLogEvery - time.Nanosecond, false, 0},
		{"a", unknownLogEvery, true, 2},
		{"a", unknownLogEvery + time.Second, false, 0},
		{"a", 3 * unknownLogEvery, true, 1},
	}
	for i, s := range steps {
		ok, held := l.allow(s.key, t0.Add(s.at))
		if ok != s.wantOK || held != s.wantHeld {
			t.Fatalf("step %d (%s at %s): allow = %v, %d; want %v, %d", i, s.key, s.at, ok, held, s.wantOK, s.wantHeld)
		}
	}
}

// A producer inventing task names cannot grow the limiter without bound:
// quiet keys are forgotten.
func TestLogLimiterForgetsQuietKeys(t *testing.T) {
	var l logLimiter
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 * limiterKeys {
		l.allow(fmt.Sprint(i), t0.Add(time.Duration(i)*unknownLogEvery))
	}
	if n := len(l.m); n > limiterKeys {
		t.Fatalf("%d keys kept, want at most %d", n, limiterKeys)
	}
}

// A job that names no task cannot be run by any worker: it is not kept
// waiting for one. (Backends refuse such inserts; this is for records
// damaged after the fact.)
func TestJobWithoutTaskIsNotKept(t *testing.T) {
	w := New(nil, Config{ID: "w"})
	var nh *noHandlerError
	if err := w.noHandler(&job.Record{ID: "x"}); errors.As(err, &nh) || !errors.Is(err, job.ErrUnknownTask) {
		t.Fatalf("no task name: %v; want a plain unknown-task error, dead-lettered at once", err)
	}
	if err := w.noHandler(&job.Record{ID: "x", Task: "t"}); !errors.As(err, &nh) {
		t.Fatalf("a task without a handler here: %v; want noHandlerError, released", err)
	}
}

// The window runs from creation, or from the last failed attempt if that
// is later.
func TestUnknownSince(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	later := created.Add(48 * time.Hour)
	if got := unknownSince(&job.Record{CreatedAt: created}); !got.Equal(created) {
		t.Fatalf("fresh job: %s", got)
	}
	if got := unknownSince(&job.Record{CreatedAt: created, Errors: []job.AttemptError{{At: later}}}); !got.Equal(later) {
		t.Fatalf("job with a later failed attempt: %s, want %s", got, later)
	}
	if got := unknownSince(&job.Record{RunAt: later}); !got.Equal(later) {
		t.Fatalf("job without CreatedAt: %s, want its RunAt", got)
	}
}
