package backends

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// Limiter holds flow-control state shared by every worker process: token
// buckets for rate limits and slot sets for concurrency limits. Because
// the state lives in the backend, adding worker processes never raises a
// limit.
//
// Fallback when absent: LimiterFor builds one on the backend's KVStore
// (compare-and-set on one key per bucket and per slot set). A backend with
// neither gives job.ErrUnsupported, and a worker with a limited task
// refuses to start on it, rather than limiting each process on its own.
type Limiter interface {
	// TakeToken takes one token from the bucket p.Key if it holds one. A
	// bucket starts full (p.Burst tokens) and refills at p.Limit tokens per
	// p.Per. Without a token, the result says when the next one comes.
	TakeToken(ctx context.Context, p TakeTokenParams) (TakeTokenResult, error)
	// AcquireSlot gives p.Holder one of the p.Limit slots of p.Key until
	// p.ExpiresAt, and reports whether it did. A holder that already has a
	// slot keeps it, with the new expiry (a heartbeat renews this way,
	// whatever p.Limit now is). Slots past their expiry are free: a holder
	// that died gives its slot back when its lease would have ended.
	AcquireSlot(ctx context.Context, p AcquireSlotParams) (bool, error)
	// ReleaseSlot frees p.Holder's slot of p.Key; releasing a slot not
	// held is not an error.
	ReleaseSlot(ctx context.Context, p ReleaseSlotParams) error
	// SlotsInUse returns the holders of p.Key's live slots with their
	// expiry, for inspection.
	SlotsInUse(ctx context.Context, p SlotsParams) (map[string]time.Time, error)
}

// TakeTokenParams is the input of Limiter.TakeToken.
type TakeTokenParams struct {
	Key   string
	Limit int           // tokens added per Per; at least 1
	Per   time.Duration // at least 1ns
	Burst int           // the bucket's size; 0 means Limit
	Now   time.Time     // zero: the current time
}

// TakeTokenResult is the outcome of Limiter.TakeToken.
type TakeTokenResult struct {
	OK bool
	// NextAt is when the bucket next holds a whole token; set when !OK.
	NextAt time.Time
}

// AcquireSlotParams is the input of Limiter.AcquireSlot.
type AcquireSlotParams struct {
	Key       string
	Limit     int    // at least 1
	Holder    string // who holds the slot: a job ID and its lease token
	ExpiresAt time.Time
	Now       time.Time // zero: the current time
}

// ReleaseSlotParams is the input of Limiter.ReleaseSlot.
type ReleaseSlotParams struct {
	Key    string
	Holder string
	Now    time.Time // zero: the current time
}

// SlotsParams is the input of Limiter.SlotsInUse.
type SlotsParams struct {
	Key string
	Now time.Time // zero: the current time
}

// Validate checks p's fields.
func (p TakeTokenParams) Validate() error {
	if p.Key == "" || p.Limit < 1 || p.Per <= 0 || p.Burst < 0 {
		return fmt.Errorf("%w: token bucket needs a key, a limit of at least 1 and a positive interval", job.ErrInvalid)
	}
	return nil
}

// Validate checks p's fields.
func (p AcquireSlotParams) Validate() error {
	if p.Key == "" || p.Limit < 1 || p.Holder == "" || p.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: slot needs a key, a limit of at least 1, a holder and an expiry", job.ErrInvalid)
	}
	return nil
}

// Refill computes a token bucket's state at now from its state at then:
// tokens grow by limit per per up to burst. Native implementations and
// the KV fallback share it, so every backend counts alike.
func Refill(tokens float64, then, now time.Time, limit int, per time.Duration, burst int) float64 {
	if burst == 0 {
		burst = limit
	}
	if el := now.Sub(then); el > 0 {
		tokens += float64(el) * float64(limit) / float64(per)
	}
	return math.Min(tokens, float64(burst))
}

// NextToken is when a bucket holding tokens (fewer than 1) at now holds one.
func NextToken(tokens float64, now time.Time, limit int, per time.Duration) time.Time {
	missing := 1 - tokens
	return now.Add(time.Duration(math.Ceil(missing * float64(per) / float64(limit))))
}

// LimiterFor returns b's own Limiter, or one on b's KVStore, or an error
// wrapping job.ErrUnsupported.
func LimiterFor(b Backend) (Limiter, error) {
	if l, ok := b.(Limiter); ok {
		return l, nil
	}
	if kv, ok := b.(KVStore); ok {
		return KVLimiter{KV: kv}, nil
	}
	return nil, fmt.Errorf("%w: %T holds no limits (neither a Limiter nor a KVStore); a limit per process would let every added worker raise it", job.ErrUnsupported, b)
}

// KVLimiter is the Limiter fallback on any KVStore: a bucket is the key
// flow/rate/<key> and a slot set flow/slots/<key>, each a small JSON value
// changed by compare-and-set, expiring once it no longer matters (a full
// bucket, a set with no live slot). Contention on one key costs retries,
// not correctness.
type KVLimiter struct{ KV KVStore }

// kvCASAttempts bounds the compare-and-set retries of one call; past it
// the caller sees job.ErrConflict and holds its job back as if limited.
const kvCASAttempts = 64

type kvBucket struct {
	Tokens float64   `json:"tokens"`
	At     time.Time `json:"at"`
}

// TakeToken implements Limiter.
func (l KVLimiter) TakeToken(ctx context.Context, p TakeTokenParams) (TakeTokenResult, error) {
	if err := p.Validate(); err != nil {
		return TakeTokenResult{}, err
	}
	now := KVNow(p.Now)
	burst := p.Burst
	if burst == 0 {
		burst = p.Limit
	}
	key := "flow/rate/" + p.Key
	for range kvCASAttempts {
		b, version, err := getJSON[kvBucket](ctx, l.KV, key, now)
		if err != nil {
			return TakeTokenResult{}, err
		}
		if version == 0 {
			b = kvBucket{Tokens: float64(burst), At: now}
		}
		tokens := Refill(b.Tokens, b.At, now, p.Limit, p.Per, burst)
		if tokens < 1 {
			return TakeTokenResult{NextAt: NextToken(tokens, now, p.Limit, p.Per)}, nil
		}
		// Once full again the bucket is the same as an absent one.
		full := now.Add(time.Duration(math.Ceil((float64(burst) - tokens + 1) * float64(p.Per) / float64(p.Limit))))
		err = putJSON(ctx, l.KV, key, kvBucket{Tokens: tokens - 1, At: now}, version, full.Add(time.Second), now)
		if errors.Is(err, job.ErrConflict) {
			continue
		}
		if err != nil {
			return TakeTokenResult{}, err
		}
		return TakeTokenResult{OK: true}, nil
	}
	return TakeTokenResult{}, fmt.Errorf("rate limit %s: %w after %d attempts", p.Key, job.ErrConflict, kvCASAttempts)
}

// AcquireSlot implements Limiter.
func (l KVLimiter) AcquireSlot(ctx context.Context, p AcquireSlotParams) (bool, error) {
	if err := p.Validate(); err != nil {
		return false, err
	}
	now := KVNow(p.Now)
	key := "flow/slots/" + p.Key
	for range kvCASAttempts {
		slots, version, err := l.liveSlots(ctx, key, now)
		if err != nil {
			return false, err
		}
		if _, held := slots[p.Holder]; !held && len(slots) >= p.Limit {
			return false, nil
		}
		slots[p.Holder] = p.ExpiresAt
		err = putJSON(ctx, l.KV, key, slots, version, latest(slots), now)
		if errors.Is(err, job.ErrConflict) {
			continue
		}
		return err == nil, err
	}
	return false, fmt.Errorf("concurrency limit %s: %w after %d attempts", p.Key, job.ErrConflict, kvCASAttempts)
}

// ReleaseSlot implements Limiter.
func (l KVLimiter) ReleaseSlot(ctx context.Context, p ReleaseSlotParams) error {
	key := "flow/slots/" + p.Key
	now := KVNow(p.Now)
	for range kvCASAttempts {
		slots, version, err := l.liveSlots(ctx, key, now)
		if err != nil {
			return err
		}
		if _, held := slots[p.Holder]; !held {
			return nil
		}
		delete(slots, p.Holder)
		if len(slots) == 0 {
			err = l.KV.DeleteKV(ctx, DeleteKVParams{Key: key, IfVersion: version})
		} else {
			err = putJSON(ctx, l.KV, key, slots, version, latest(slots), now)
		}
		if errors.Is(err, job.ErrConflict) {
			continue
		}
		return err
	}
	return fmt.Errorf("concurrency limit %s: %w after %d attempts", p.Key, job.ErrConflict, kvCASAttempts)
}

// SlotsInUse implements Limiter.
func (l KVLimiter) SlotsInUse(ctx context.Context, p SlotsParams) (map[string]time.Time, error) {
	slots, _, err := l.liveSlots(ctx, "flow/slots/"+p.Key, KVNow(p.Now))
	return slots, err
}

// liveSlots reads a slot set without its expired slots.
func (l KVLimiter) liveSlots(ctx context.Context, key string, now time.Time) (map[string]time.Time, int64, error) {
	slots, version, err := getJSON[map[string]time.Time](ctx, l.KV, key, now)
	if err != nil {
		return nil, 0, err
	}
	live := make(map[string]time.Time, len(slots))
	for h, exp := range slots {
		if exp.After(now) {
			live[h] = exp
		}
	}
	return live, version, nil
}

func latest(slots map[string]time.Time) time.Time {
	var t time.Time
	for _, exp := range slots {
		if exp.After(t) {
			t = exp
		}
	}
	return t
}

// getJSON reads a key's JSON value; an absent key is the zero value at
// version 0.
func getJSON[T any](ctx context.Context, kv KVStore, key string, now time.Time) (T, int64, error) {
	var v T
	got, err := kv.GetKV(ctx, GetKVParams{Key: key, Now: now})
	if errors.Is(err, job.ErrNotFound) {
		return v, 0, nil
	}
	if err != nil {
		return v, 0, fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(got.Value, &v); err != nil {
		// A value this code cannot read is replaced, not fatal: limits are
		// soft state that the next write rebuilds.
		var zero T
		return zero, got.Version, nil
	}
	return v, got.Version, nil
}

func putJSON(ctx context.Context, kv KVStore, key string, v any, version int64, exp, now time.Time) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if _, err := kv.PutKV(ctx, PutKVParams{Key: key, Value: b, IfVersion: version, ExpiresAt: exp, Now: now}); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}
