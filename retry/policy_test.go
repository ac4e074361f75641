package retry_test

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/retry"
)

func TestStops(t *testing.T) {
	a := func(n int, el time.Duration) retry.Attempt { return retry.Attempt{Number: n, Elapsed: el} }
	cases := []struct {
		name string
		stop retry.Stop
		at   retry.Attempt
		want bool
	}{
		{"attempt below", retry.StopAfterAttempt(3), a(2, 0), false},
		{"attempt reached", retry.StopAfterAttempt(3), a(3, 0), true},
		{"elapsed below", retry.StopAfterElapsed(time.Minute), a(9, time.Second), false},
		{"elapsed reached", retry.StopAfterElapsed(time.Minute), a(1, time.Minute), true},
		{"any", retry.StopAny(retry.StopAfterAttempt(5), retry.StopAfterElapsed(time.Minute)), a(1, time.Hour), true},
		{"all, one", retry.StopAll(retry.StopAfterAttempt(5), retry.StopAfterElapsed(time.Minute)), a(1, time.Hour), false},
		{"all, both", retry.StopAll(retry.StopAfterAttempt(5), retry.StopAfterElapsed(time.Minute)), a(5, time.Hour), true},
		{"never", retry.StopNever(), a(1000, time.Hour), false},
	}
	for _, c := range cases {
		if got := c.stop(c.at); got != c.want {
			t.Errorf("%s: stop = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestWaits(t *testing.T) {
	n := func(i int) retry.Attempt { return retry.Attempt{Number: i} }
	exp := retry.WaitExponential(time.Second, 10*time.Second)
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		if got := exp(n(i + 1)); got != want {
			t.Errorf("exponential attempt %d = %v, want %v", i+1, got, want)
		}
	}
	if got := exp(n(500)); got != 10*time.Second {
		t.Errorf("exponential attempt 500 = %v, want the cap (no overflow)", got)
	}
	chain := retry.WaitChain(retry.WaitFixed(time.Second), retry.WaitFixed(time.Second), retry.WaitFixed(5*time.Second))
	for i, want := range []time.Duration{time.Second, time.Second, 5 * time.Second, 5 * time.Second} {
		if got := chain(n(i + 1)); got != want {
			t.Errorf("chain attempt %d = %v, want %v", i+1, got, want)
		}
	}
	sum := retry.WaitSum(retry.WaitFixed(time.Second), retry.WaitFixed(2*time.Second))
	if got := sum(n(1)); got != 3*time.Second {
		t.Errorf("sum = %v", got)
	}
	for i := 1; i <= 200; i++ {
		if d := retry.WaitRandom(time.Second, 2*time.Second)(n(i)); d < time.Second || d >= 2*time.Second {
			t.Fatalf("random wait %v outside [1s, 2s)", d)
		}
		if d := retry.WaitFullJitter(time.Second, time.Minute)(n(3)); d < 0 || d >= 4*time.Second {
			t.Fatalf("full jitter at attempt 3 = %v, outside [0, 4s)", d)
		}
		if d := retry.WaitDecorrelatedJitter(time.Second, 30*time.Second)(n(i % 20)); d < time.Second || d > 30*time.Second {
			t.Fatalf("decorrelated jitter = %v, outside [1s, 30s]", d)
		}
	}
}

func TestRetryIf(t *testing.T) {
	wrapped := fmt.Errorf("read config: %w", io.ErrUnexpectedEOF)
	pathErr := fmt.Errorf("open: %w", &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist})
	if !retry.IfErrorIs(io.EOF, io.ErrUnexpectedEOF)(wrapped) || retry.IfErrorIs(io.EOF)(wrapped) {
		t.Error("IfErrorIs does not follow the chain")
	}
	if !retry.IfErrorAs[*fs.PathError]()(pathErr) || retry.IfErrorAs[*fs.PathError]()(wrapped) {
		t.Error("IfErrorAs does not match by type")
	}
	if retry.Not(retry.IfErrorIs(io.ErrUnexpectedEOF))(wrapped) {
		t.Error("Not does not invert")
	}
	if !retry.IfAny(retry.IfErrorIs(io.EOF), retry.IfFunc(func(err error) bool { return err == pathErr }))(pathErr) {
		t.Error("IfAny misses a match")
	}
}

func TestDecide(t *testing.T) {
	errTransient := errors.New("503 from downstream")
	p := retry.Policy{
		Stop:    retry.StopAfterAttempt(3),
		Wait:    retry.WaitExponential(time.Second, time.Minute),
		RetryIf: retry.Not(retry.IfErrorIs(io.ErrUnexpectedEOF)),
	}
	if d := p.Decide(retry.Attempt{Number: 2, Err: errTransient}); !d.Retry || d.Delay != 2*time.Second {
		t.Errorf("attempt 2 = %+v, want retry after 2s", d)
	}
	if d := p.Decide(retry.Attempt{Number: 3, Err: errTransient}); d.Retry || d.Reason != "retries exhausted" {
		t.Errorf("attempt 3 = %+v, want exhausted", d)
	}
	if d := p.Decide(retry.Attempt{Number: 1, Err: io.ErrUnexpectedEOF}); d.Retry {
		t.Errorf("non-retryable error was retried: %+v", d)
	}
	perm := fmt.Errorf("handler: %w", retry.Permanent(errTransient))
	if d := p.Decide(retry.Attempt{Number: 1, Err: perm}); d.Retry || !errors.Is(perm, errTransient) {
		t.Errorf("permanent error = %+v, or it lost its cause", d)
	}
	if retry.Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	if d, ok := retry.SnoozeDelay(fmt.Errorf("later: %w", retry.Snooze(time.Minute))); !ok || d != time.Minute {
		t.Errorf("SnoozeDelay = %v, %v", d, ok)
	}
	def := retry.Default()
	if d := def.Decide(retry.Attempt{Number: 1, Err: errTransient}); !d.Retry || d.Delay < time.Second || d.Delay >= 2*time.Second {
		t.Errorf("default attempt 1 = %+v, want retry after 1-2s", d)
	}
	if d := def.Decide(retry.Attempt{Number: 10, Err: errTransient}); d.Retry {
		t.Errorf("default retries past 10 attempts: %+v", d)
	}
}
