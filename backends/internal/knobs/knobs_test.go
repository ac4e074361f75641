package knobs_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/knobs"
)

type config struct {
	KeepDone, KeepDead, JanitorEvery time.Duration
	Logger                           *slog.Logger
	Clock                            backends.Clock
}

func (c *config) knobs() knobs.Knobs {
	return knobs.Knobs{KeepDone: &c.KeepDone, KeepDead: &c.KeepDead, JanitorEvery: &c.JanitorEvery, Logger: &c.Logger, Clock: &c.Clock}
}

func TestFillDefaults(t *testing.T) {
	var c config
	c.knobs().Fill(time.Minute)
	if c.KeepDone != backends.DefaultKeepDone || c.KeepDead != backends.DefaultKeepDead ||
		c.JanitorEvery != time.Minute || c.Logger != slog.Default() || c.Clock != (backends.SystemClock{}) {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestFillKeepsSetAndNegative(t *testing.T) {
	l := slog.New(slog.DiscardHandler)
	c := config{KeepDone: -1, KeepDead: time.Hour, JanitorEvery: -1, Logger: l}
	c.knobs().Fill(time.Minute)
	if c.KeepDone != -1 || c.KeepDead != time.Hour || c.JanitorEvery != -1 || c.Logger != l {
		t.Fatalf("set values changed: %+v", c)
	}
}

func TestFillSkipsAbsentSettings(t *testing.T) {
	var clock backends.Clock
	knobs.Knobs{Clock: &clock}.Fill(time.Second) // no retention, janitor or logger: nothing to fill there
	if clock != (backends.SystemClock{}) {
		t.Fatalf("clock = %v", clock)
	}
}
