package retry

import (
	"math/rand/v2"
	"time"
)

// Wait returns how long to wait after attempt a before the next one.
type Wait func(a Attempt) time.Duration

// WaitFixed always waits d.
func WaitFixed(d time.Duration) Wait { return func(Attempt) time.Duration { return d } }

// WaitExponential waits base, 2*base, 4*base, ... never more than limit.
func WaitExponential(base, limit time.Duration) Wait {
	return func(a Attempt) time.Duration { return expo(base, limit, a.Number) }
}

func expo(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n; i++ {
		if d >= limit/2 {
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}

// WaitRandom waits a uniformly random time in [lo, hi).
func WaitRandom(lo, hi time.Duration) Wait {
	return func(Attempt) time.Duration { return lo + randN(hi-lo) }
}

// WaitFullJitter waits a random time in [0, exponential(base, limit)):
// AWS's "full jitter", which spreads a burst of failures the widest.
func WaitFullJitter(base, limit time.Duration) Wait {
	return func(a Attempt) time.Duration { return randN(expo(base, limit, a.Number)) }
}

// WaitDecorrelatedJitter waits min(limit, random in [base, 3*previous)),
// AWS's "decorrelated jitter". Policies hold no state, so the chain of
// previous waits is drawn anew for each attempt; each draw has the same
// distribution as a remembered chain would.
func WaitDecorrelatedJitter(base, limit time.Duration) Wait {
	return func(a Attempt) time.Duration {
		d := base
		for i := 0; i < a.Number; i++ {
			d = min(limit, base+randN(3*d-base))
		}
		return d
	}
}

// WaitChain uses waits[i] after attempt i+1 and the last one after that, as
// in "1s three times, then 10s".
func WaitChain(waits ...Wait) Wait {
	return func(a Attempt) time.Duration {
		if len(waits) == 0 {
			return 0
		}
		i := min(max(a.Number-1, 0), len(waits)-1)
		return waits[i](a)
	}
}

// WaitSum adds up several waits, as in exponential plus random jitter.
func WaitSum(waits ...Wait) Wait {
	return func(a Attempt) time.Duration {
		var d time.Duration
		for _, w := range waits {
			d += w(a)
		}
		return d
	}
}

func randN(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}
