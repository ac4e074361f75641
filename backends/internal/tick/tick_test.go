package tick_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends/internal/tick"
)

// logged hands each record's message and error to the test.
type logged chan string

func (l logged) Enabled(context.Context, slog.Level) bool { return true }
func (l logged) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l logged) WithGroup(string) slog.Handler            { return l }
func (l logged) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.Key + "=" + a.Value.String(); return true })
	l <- msg
	return nil
}

func TestJanitorLogsFailuresUntilClosed(t *testing.T) {
	closing, done := make(chan struct{}), make(chan struct{})
	log := make(logged, 1)
	go func() {
		defer close(done)
		tick.Janitor(closing, time.Millisecond, slog.New(log), "testbackend", func(ctx context.Context) error {
			return errors.New("boom")
		})
	}()
	if got, want := <-log, "testbackend: janitor err=boom"; got != want {
		t.Errorf("logged %q, want %q", got, want)
	}
	close(closing)
	for {
		select {
		case <-log: // a run that failed before it saw the close
		case <-done:
			return
		}
	}
}

func TestJanitorQuietOnClose(t *testing.T) {
	closing, done := make(chan struct{}), make(chan struct{})
	log := make(logged, 1)
	ran := make(chan struct{})
	go func() {
		defer close(done)
		tick.Janitor(closing, time.Millisecond, slog.New(log), "testbackend", func(ctx context.Context) error {
			select {
			case ran <- struct{}{}:
			default:
			}
			<-ctx.Done() // the backend closes while the janitor works
			return ctx.Err()
		})
	}()
	<-ran
	close(closing)
	<-done
	select {
	case msg := <-log:
		t.Errorf("logged %q for a run the close ended", msg)
	default:
	}
}
