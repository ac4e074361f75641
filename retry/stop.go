package retry

import "time"

// Stop reports whether to give up after attempt a.
type Stop func(a Attempt) bool

// StopAfterAttempt gives up once n attempts have failed.
func StopAfterAttempt(n int) Stop {
	return func(a Attempt) bool { return a.Number >= n }
}

// StopAfterElapsed gives up once d has passed since the first attempt.
func StopAfterElapsed(d time.Duration) Stop {
	return func(a Attempt) bool { return a.Elapsed >= d }
}

// StopNever never gives up (the job still ends at its MaxDeliveries).
func StopNever() Stop { return func(Attempt) bool { return false } }

// StopAny gives up when any of stops does.
func StopAny(stops ...Stop) Stop {
	return func(a Attempt) bool {
		for _, s := range stops {
			if s(a) {
				return true
			}
		}
		return false
	}
}

// StopAll gives up when all of stops do.
func StopAll(stops ...Stop) Stop {
	return func(a Attempt) bool {
		for _, s := range stops {
			if !s(a) {
				return false
			}
		}
		return len(stops) > 0
	}
}
