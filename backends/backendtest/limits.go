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
	if lb, ok := l.(backends.LimiterBatcher); ok {
		limitsBatched(h, lb)
	}
}

// limitsBatched: the calls of a LimiterBatcher mean what each would alone.
func limitsBatched(h *harness, l backends.LimiterBatcher) {
	now := h.now()
	k := func(name string) string { return "bt/" + h.ns + "/many-" + name }
	ts := []backends.TakeTokensParams{
		{Key: k("r1"), Limit: 3, Per: time.Minute, Count: 2, Now: now},
		{Key: k("r2"), Limit: 1, Per: time.Minute, Count: 2, Now: now},
	}
	res, err := l.TakeTokensMany(h.ctx, ts)
	must(h.t, err)
	if len(res) != 2 || res[0].Taken != 2 || res[1].Taken != 1 || res[1].NextAt.IsZero() {
		h.t.Fatalf("TakeTokensMany = %+v; want 2 of 3, then 1 of 1 with its next token", res)
	}
	res, err = l.TakeTokensMany(h.ctx, ts)
	must(h.t, err)
	if res[0].Taken != 1 || res[1].Taken != 0 {
		h.t.Fatalf("TakeTokensMany again = %+v; want the last 1 of 3, none of 1", res)
	}
	exp := now.Add(time.Hour)
	as := []backends.AcquireSlotsParams{
		{Key: k("s1"), Limit: 1, Holders: []string{"a", "b"}, ExpiresAt: exp, Now: now},
		{Key: k("s2"), Limit: 2, Holders: []string{"c", "d", "e"}, ExpiresAt: exp, Now: now},
	}
	got, err := l.AcquireSlotsMany(h.ctx, as)
	must(h.t, err)
	if fmt.Sprint(got) != "[[a] [c d]]" {
		h.t.Fatalf("AcquireSlotsMany = %v, want [[a] [c d]]", got)
	}
	must(h.t, l.ReleaseSlotsMany(h.ctx, []backends.ReleaseSlotsParams{
		{Key: k("s1"), Holders: []string{"a"}, Now: now}, {Key: k("s2"), Holders: []string{"c", "d"}, Now: now},
	}))
	got, err = l.AcquireSlotsMany(h.ctx, as)
	must(h.t, err)
	if fmt.Sprint(got) != "[[a] [c d]]" {
		h.t.Fatalf("after releasing, AcquireSlotsMany = %v, want [[a] [c d]] again", got)
	}
}

func limitsTokenBucket(h *harness, l backends.Limiter) {
	key := "bt/" + h.ns + "/rate"
	now := h.now()
	type result struct {
		OK     bool
		NextAt time.Time
	}
	take := func(at time.Time) result {
		h.t.Helper()
		r, err := l.TakeTokens(h.ctx, backends.TakeTokensParams{Key: key, Limit: 3, Per: time.Minute, Now: at})
		must(h.t, err)
		if r.Taken > 1 {
			h.t.Fatalf("took %d tokens, asked for 1", r.Taken)
		}
		return result{r.Taken == 1, r.NextAt}
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
	// Other keys have buckets of their own; an explicit burst is the
	// size; a batch takes what there is and says when more comes.
	other := backends.TakeTokensParams{Key: key + "-other", Limit: 1, Per: time.Hour, Burst: 5, Count: 3, Now: now}
	for _, want := range []int{3, 2, 0} {
		r, err := l.TakeTokens(h.ctx, other)
		must(h.t, err)
		if r.Taken != want {
			h.t.Fatalf("batch of 3 from a bucket of 5: took %d, want %d", r.Taken, want)
		}
		if want < 3 && r.NextAt.Sub(now).Round(time.Second) != time.Hour {
			h.t.Fatalf("next token in %s, want an hour (1 an hour)", r.NextAt.Sub(now))
		}
	}
	// A caller whose Now is older than the bucket's (it read the clock,
	// then waited for a lock while a later caller took) must not move the
	// bucket back in time: the next caller would refill that interval
	// again, and the limit over-grant.
	late := backends.TakeTokensParams{Key: key + "-late", Limit: 10, Per: time.Second, Count: 5, Now: now}
	r5, err := l.TakeTokens(h.ctx, late)
	must(h.t, err)
	late.Count, late.Now = 1, now.Add(-500*time.Millisecond)
	r1, err := l.TakeTokens(h.ctx, late)
	must(h.t, err)
	late.Count, late.Now = 10, now
	rest, err := l.TakeTokens(h.ctx, late)
	must(h.t, err)
	if got := r5.Taken + r1.Taken + rest.Taken; got > 10 {
		h.t.Fatalf("a bucket of 10 gave %d tokens at one time (%d, then %d to a caller 500ms behind, then %d): an older caller moved it back", got, r5.Taken, r1.Taken, rest.Taken)
	}

	_, err = l.TakeTokens(h.ctx, backends.TakeTokensParams{Key: key, Limit: 0, Per: time.Second})
	expectErr(h.t, err, job.ErrInvalid)
}

// concurrentCallers is how many goroutines race for a limit: several
// worker processes' worth of fetch loops.
const concurrentCallers = 12

func limitsTokensConcurrent(h *harness, l backends.Limiter) {
	key := "bt/" + h.ns + "/race"
	now := h.now()
	got, failed := race(h, func(i int) (int, error) {
		n := 0
		for range 3 {
			r, err := l.TakeTokens(h.ctx, backends.TakeTokensParams{Key: key, Limit: 5, Per: time.Hour, Count: 1 + i%2, Now: now})
			if err != nil {
				return n, err
			}
			n += r.Taken
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
		got, err := l.AcquireSlots(h.ctx, backends.AcquireSlotsParams{Key: key, Limit: 2, Holders: []string{holder}, ExpiresAt: exp, Now: at})
		must(h.t, err)
		return len(got) == 1 && got[0] == holder
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
	must(h.t, l.ReleaseSlots(h.ctx, backends.ReleaseSlotsParams{Key: key, Holders: []string{"b"}, Now: now}))
	must(h.t, l.ReleaseSlots(h.ctx, backends.ReleaseSlotsParams{Key: key, Holders: []string{"b"}, Now: now})) // twice: no error
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
	_, err = l.AcquireSlots(h.ctx, backends.AcquireSlotsParams{Key: key, Limit: 1})
	expectErr(h.t, err, job.ErrInvalid)

	// A batch: holders in order while slots are free; one already held
	// is kept whatever its place.
	batch := key + "-batch"
	got, err := l.AcquireSlots(h.ctx, backends.AcquireSlotsParams{Key: batch, Limit: 3, Holders: []string{"p", "q"}, ExpiresAt: now.Add(time.Hour), Now: now})
	must(h.t, err)
	if len(got) != 2 {
		h.t.Fatalf("2 holders of 3 free slots: granted %v", got)
	}
	got, err = l.AcquireSlots(h.ctx, backends.AcquireSlotsParams{Key: batch, Limit: 3, Holders: []string{"r", "s", "p"}, ExpiresAt: now.Add(time.Hour), Now: now})
	must(h.t, err)
	if len(got) != 2 || got[0] != "r" || got[1] != "p" {
		h.t.Fatalf("r, s, p with p holding and 1 slot free: granted %v, want [r p]", got)
	}
	must(h.t, l.ReleaseSlots(h.ctx, backends.ReleaseSlotsParams{Key: batch, Holders: []string{"p", "q", "r"}, Now: now}))
	if inUse, err := l.SlotsInUse(h.ctx, backends.SlotsParams{Key: batch, Now: now}); err != nil || len(inUse) != 0 {
		h.t.Fatalf("after releasing all: %v, %v", inUse, err)
	}

	// A batch bigger than a Lua unpack takes (about 8,000 values; Redis).
	many := make([]string, 9000)
	for i := range many {
		many[i] = fmt.Sprintf("holder-%04d", i)
	}
	got, err = l.AcquireSlots(h.ctx, backends.AcquireSlotsParams{Key: batch, Limit: 8800, Holders: many, ExpiresAt: now.Add(time.Hour), Now: now})
	must(h.t, err)
	if len(got) != 8800 || got[0] != many[0] || got[8799] != many[8799] {
		h.t.Fatalf("9,000 holders of 8,800 free slots: granted %d (%v ... )", len(got), got[:min(len(got), 3)])
	}
	must(h.t, l.ReleaseSlots(h.ctx, backends.ReleaseSlotsParams{Key: batch, Holders: many, Now: now}))
	if inUse, err := l.SlotsInUse(h.ctx, backends.SlotsParams{Key: batch, Now: now}); err != nil || len(inUse) != 0 {
		h.t.Fatalf("after releasing 8,800: %d in use, %v", len(inUse), err)
	}
}

func limitsSlotsConcurrent(h *harness, l backends.Limiter) {
	key := "bt/" + h.ns + "/slot-race"
	now := h.now()
	got, failed := race(h, func(i int) (int, error) {
		got, err := l.AcquireSlots(h.ctx, backends.AcquireSlotsParams{
			Key: key, Limit: 2, Holders: []string{fmt.Sprintf("holder-%d", i), fmt.Sprintf("holder-%d-b", i)}, ExpiresAt: now.Add(time.Hour), Now: now,
		})
		return len(got), err
	})
	if got > 2 || (got < 2 && !failed) {
		h.t.Fatalf("%d callers got %d slots of 2", concurrentCallers, got)
	}
}
