package retry

import (
	"errors"
	"fmt"
	"time"
)

type permanentError struct{ err error }

func (e *permanentError) Error() string { return "permanent: " + e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: the job goes straight to dead
// letter. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, came from Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// SnoozeError asks for the job to run again after Delay without counting
// the attempt as a failure.
type SnoozeError struct{ Delay time.Duration }

func (e *SnoozeError) Error() string { return fmt.Sprintf("snoozed for %s", e.Delay) }

// Snooze returns an error that reschedules the job after d without using an
// attempt or a delivery: for work that is not ready yet.
func Snooze(d time.Duration) error { return &SnoozeError{Delay: d} }

// SnoozeDelay reports whether err is a snooze and for how long.
func SnoozeDelay(err error) (time.Duration, bool) {
	var s *SnoozeError
	if errors.As(err, &s) {
		return s.Delay, true
	}
	return 0, false
}
