// Package knobs fills the settings every backend's Config has under the
// same names and meanings: KeepDone and KeepDead (retention of finished
// jobs), JanitorEvery (how often the background work runs), Logger and
// Clock. One place decides what zero and negative mean, so a setting reads
// the same whichever backend an app picks.
package knobs

import (
	"log/slog"
	"time"

	"github.com/conveyorhq/conveyor/backends"
)

// Knobs points at a Config's shared settings.
type Knobs struct {
	KeepDone, KeepDead *time.Duration
	JanitorEvery       *time.Duration
	Logger             **slog.Logger
	Clock              *backends.Clock
}

// Fill sets the zero settings to their defaults: KeepDone and KeepDead to
// backends.DefaultKeepDone and DefaultKeepDead (negative: keep forever),
// JanitorEvery to janitorEvery, the backend's own default, as what its
// janitor does costs differently in each (negative: no janitor in this
// process), Logger to slog.Default() and Clock to backends.SystemClock{}.
// A nil pointer is a setting the backend does not have.
func (k Knobs) Fill(janitorEvery time.Duration) {
	if k.KeepDone != nil && k.KeepDead != nil {
		backends.DefaultRetention(k.KeepDone, k.KeepDead)
	}
	if k.JanitorEvery != nil && *k.JanitorEvery == 0 {
		*k.JanitorEvery = janitorEvery
	}
	if k.Logger != nil && *k.Logger == nil {
		*k.Logger = slog.Default()
	}
	if k.Clock != nil && *k.Clock == nil {
		*k.Clock = backends.SystemClock{}
	}
}
