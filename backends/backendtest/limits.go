package backendtest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// hasLimits: the backend holds limits natively or through its KVStore.
func hasLimits(b backends.Backend) bool {
	_, err := backends.LimiterFor(b)
	return err == nil
}

// testLimits checks the Limiter the backend gives (its own, or the KV
// fallback): buckets refill at their rate on the caller's clock, slots
// are bounded and expire, and both hold under concurrent callers, which
// is what makes a limit cluster-wide.
func testLimits(h *harness) {
	l, err := backends.LimiterFor(h.b)
	must(h.t, err)
	limitsTokenBucket(h, l)
	limitsTokensConcurrent(h, l)
	limitsSlots(h, l)
	limitsSlotsConcurrent(h, l)
}

func limitsTokenBucket(h *harness, l backends.Limiter) {
	key := "bt/" + h.ns + "/rate"
	now := h.now()
	take := func(at time.Time) backends.TakeTokenResult {
		h.t.Helper()
		r, err := l.TakeToken(h.ctx, backends.TakeTokenParams{Key: key, Limit: 3, Per: time.Minute, Now: at})
		must(h.t, err)
		return r
	}
	for i := range 3 { // a new bucket is full: the burst, which defaults to the limit
		if r := take(now); !r.OK {
			h.t.Fatalf("token %d of a full bucket of 3 refused", i+1)
		}
	}
	r := take(now)
	if r.OK {
		h.t.Fatal("a 4th token out of a bucket of 3 was given")
	}
	// 3 a minute: the next token is 20s away.
	if d := r.NextAt.Sub(now); d < 19*time.Second || d > 21*time.Second {
		h.t.Fatalf("next token in %s, want 20s", d)
	}
	if take(now.Add(10 * time.Second)).OK {
		h.t.Fatal("a token given after half its refill time")
	}
	if !take(r.NextAt).OK {
		h.t.Fatal("no token at the time the bucket said")
	}
	if take(r.NextAt).OK {
		h.t.Fatal("two tokens after one refill time")
	}
	// A bucket refills to its burst and no further.
	later := now.Add(time.Hour)
	got := 0
	for take(later).OK {
		got++
		if got > 10 {
			break
		}
	}
	if got != 3 {
		h.t.Fatalf("an hour later the bucket gave %d tokens, want its burst of 3", got)
	}
	// Other keys have buckets of their own; an explicit burst is the size.
	r2, err := l.TakeToken(h.ctx, backends.TakeTokenParams{Key: key + "-other", Limit: 1, Per: time.Hour, Burst: 2, Now: now})
	must(h.t, err)
	r3, err := l.TakeToken(h.ctx, backends.TakeTokenParams{Key: key + "-other", Limit: 1, Per: time.Hour, Burst: 2, Now: now})
	must(h.t, err)
	r4, err := l.TakeToken(h.ctx, backends.TakeTokenParams{Key: key + "-other", Limit: 1, Per: time.Hour, Burst: 2, Now: now})
	must(h.t, err)
	if !r2.OK || !r3.OK || r4.OK {
		h.t.Fatalf("burst of 2: got %v %v %v, want true true false", r2.OK, r3.OK, r4.OK)
	}
	_, err = l.TakeToken(h.ctx, backends.TakeTokenParams{Key: key, Limit: 0, Per: time.Second})
	expectErr(h.t, err, job.ErrInvalid)
}

// concurrentCallers is how many goroutines race for a limit: several
// worker processes' worth of fetch loops.
const concurrentCallers = 12

func limitsTokensConcurrent(h *harness, l backends.Limiter) {
	key := "bt/" + h.ns + "/race"
	now := h.now()
	got, failed := race(h, func(int) (int, error) {
		n := 0
		for range 3 {
			r, err := l.TakeToken(h.ctx, backends.TakeTokenParams{Key: key, Limit: 5, Per: time.Hour, Now: now})
			if err != nil {
				return n, err
			}
			if r.OK {
				n++
			}
		}
		return n, nil
	})
	if got > 5 || (got < 5 && !failed) {
		h.t.Fatalf("%d callers took %d tokens from a bucket of 5", concurrentCallers, got)
	}
}

// race runs fn on concurrentCallers goroutines at once and sums what they
// got. Only a compare-and-set that kept losing may fail (job.ErrConflict);
// failed says whether one did, which may leave the sum short, never over.
func race(h *harness, fn func(i int) (int, error)) (got int64, failed bool) {
	var sum atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, concurrentCallers)
	for i := range concurrentCallers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := fn(i)
			sum.Add(int64(n))
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		expectErr(h.t, err, job.ErrConflict)
		failed = true
	}
	return sum.Load(), failed
}

func limitsSlots(h *harness, l backends.Limiter) {
	key := "bt/" + h.ns + "/slots"
	now := h.now()
	acq := func(holder string, exp time.Time, at time.Time) bool {
		h.t.Helper()
		ok, err := l.AcquireSlot(h.ctx, backends.AcquireSlotParams{Key: key, Limit: 2, Holder: holder, ExpiresAt: exp, Now: at})
		must(h.t, err)
		return ok
	}
	if !acq("a", now.Add(time.Minute), now) || !acq("b", now.Add(time.Hour), now) {
		h.t.Fatal("2 slots of 2 refused")
	}
	if acq("c", now.Add(time.Hour), now) {
		h.t.Fatal("a 3rd slot of 2 given")
	}
	if !acq("a", now.Add(time.Minute), now) {
		h.t.Fatal("a holder renewing its slot was refused")
	}
	inUse, err := l.SlotsInUse(h.ctx, backends.SlotsParams{Key: key, Now: now})
	must(h.t, err)
	if len(inUse) != 2 || inUse["a"].IsZero() || inUse["b"].IsZero() {
		h.t.Fatalf("slots in use %v, want a and b", inUse)
	}
	must(h.t, l.ReleaseSlot(h.ctx, backends.ReleaseSlotParams{Key: key, Holder: "b", Now: now}))
	must(h.t, l.ReleaseSlot(h.ctx, backends.ReleaseSlotParams{Key: key, Holder: "b", Now: now})) // twice: no error
	if !acq("c", now.Add(time.Hour), now) {
		h.t.Fatal("a released slot was not given again")
	}
	// a's holder dies: its slot is free once it expires, never before.
	if acq("d", now.Add(time.Hour), now.Add(30*time.Second)) {
		h.t.Fatal("a slot given before its holder's expiry")
	}
	if !acq("d", now.Add(time.Hour), now.Add(2*time.Minute)) {
		h.t.Fatal("an expired slot was not given again")
	}
	_, err = l.AcquireSlot(h.ctx, backends.AcquireSlotParams{Key: key, Limit: 1})
	expectErr(h.t, err, job.ErrInvalid)
}

func limitsSlotsConcurrent(h *harness, l backends.Limiter) {
	key := "bt/" + h.ns + "/slot-race"
	now := h.now()
	got, failed := race(h, func(i int) (int, error) {
		ok, err := l.AcquireSlot(h.ctx, backends.AcquireSlotParams{
			Key: key, Limit: 2, Holder: fmt.Sprintf("holder-%d", i), ExpiresAt: now.Add(time.Hour), Now: now,
		})
		if ok {
			return 1, err
		}
		return 0, err
	})
	if got > 2 || (got < 2 && !failed) {
		h.t.Fatalf("%d callers got %d slots of 2", concurrentCallers, got)
	}
}
