package worker_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/worker"
)

// delivery is one outcome a worker reported, with the record it ran.
type delivery struct {
	rec *job.Record
	out worker.Outcome
}

// feed is an Observer that passes every outcome on, for a test to wait on.
type feed chan delivery

func newFeed() feed { return make(feed, 10_000) }

func (f feed) Started(*job.Record) {}

func (f feed) Finished(rec *job.Record, o worker.Outcome, _ time.Duration) {
	select {
	case f <- delivery{rec: rec, out: o}:
	default: // a test that stopped listening must not block the worker
	}
}

// until reads outcomes until ok says the test has seen enough, or fails it
// after 30s.
func (f feed) until(t *testing.T, what string, ok func(delivery) bool) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case d := <-f:
			if ok(d) {
				return
			}
		case <-timeout:
			t.Fatalf("no outcome within 30s: %s", what)
		}
	}
}

// logs collects a worker's log lines as JSON.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lines returns the lines whose message is msg.
func (l *logs) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, raw := range bytes.Split(bytes.TrimSpace(l.buf.Bytes()), []byte("\n")) {
		if len(raw) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("log line %q: %v", raw, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
