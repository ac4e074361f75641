package scheduler_test

import (
	"errors"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/scheduler"
)

// Schedules come from operators (the CLI) and from the backend: parsing
// any string gives a schedule or an ErrInvalid error, never a panic, and a
// schedule's next tick is in the future.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"* * * * *", "*/5 * * * * *", "@every 5m", "@hourly", "CRON_TZ=Europe/Berlin 0 9 * * 1-5",
		"61 * * * *", "CRON_TZ=Nowhere/Land * * * * *", "@every -1s", "0 0 31 2 *"} {
		f.Add(s)
	}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := scheduler.Parse(spec)
		if err != nil {
			if !errors.Is(err, job.ErrInvalid) {
				t.Fatalf("Parse(%q) = %v, not ErrInvalid", spec, err)
			}
			return
		}
		if next := s.Next(from); !next.IsZero() && !next.After(from) {
			t.Fatalf("Parse(%q).Next(%v) = %v, not after", spec, from, next)
		}
	})
}
