package backends

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
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
	// TakeTokens takes up to p.Count tokens from the bucket p.Key: as many
	// whole tokens as it holds. A bucket starts full (p.Burst tokens) and
	// refills at p.Limit tokens per p.Per. When it took fewer than asked,
	// the result says when the next token comes. One call serves the jobs
	// of one reserve, so a batch costs one round trip, not one per job.
	TakeTokens(ctx context.Context, p TakeTokensParams) (TakeTokensResult, error)
	// AcquireSlots gives each of p.Holders, in order, one of the p.Limit
	// slots of p.Key until p.ExpiresAt while slots are free, and returns
	// the holders it gave one. A holder that already has a slot keeps it,
	// with the new expiry (a heartbeat renews this way, whatever p.Limit
	// now is). Slots past their expiry are free: a holder that died gives
	// its slot back when its lease would have ended.
	AcquireSlots(ctx context.Context, p AcquireSlotsParams) ([]string, error)
	// ReleaseSlots frees p.Holders' slots of p.Key; releasing a slot not
	// held is not an error.
	ReleaseSlots(ctx context.Context, p ReleaseSlotsParams) error
	// SlotsInUse returns the holders of p.Key's live slots with their
	// expiry, for inspection.
	SlotsInUse(ctx context.Context, p SlotsParams) (map[string]time.Time, error)
}

// LimiterBatcher is a Limiter that sends the calls for many keys in one
// round trip (a pipeline): a reserve's jobs of many tenants are admitted
// with one wait, not one per tenant. Each call means what the Limiter
// method of its name does; results are in the order of the calls; keys
// within one batch are distinct. A non-nil error means the batch's
// outcome is unknown for every call in it.
//
// Fallback when absent: the calls run concurrently, a round trip each.
type LimiterBatcher interface {
	Limiter
	TakeTokensMany(ctx context.Context, ps []TakeTokensParams) ([]TakeTokensResult, error)
	AcquireSlotsMany(ctx context.Context, ps []AcquireSlotsParams) ([][]string, error)
	ReleaseSlotsMany(ctx context.Context, ps []ReleaseSlotsParams) error
}

// TakeTokensParams is the input of Limiter.TakeTokens.
type TakeTokensParams struct {
	Key   string
	Limit int           // tokens added per Per; at least 1
	Per   time.Duration // at least 1ns
	Burst int           // the bucket's size; 0 means Limit
	Count int           // tokens wanted; 0 means 1
	Now   time.Time     // zero: the current time
}

// TakeTokensResult is the outcome of Limiter.TakeTokens.
type TakeTokensResult struct {
	Taken int
	// NextAt is when the bucket next holds a whole token; set when Taken
	// is less than the count asked for.
	NextAt time.Time
}

// AcquireSlotsParams is the input of Limiter.AcquireSlots.
type AcquireSlotsParams struct {
	Key       string
	Limit     int      // at least 1
	Holders   []string // who hold the slots: job IDs with their lease tokens
	ExpiresAt time.Time
	Now       time.Time // zero: the current time
}

// ReleaseSlotsParams is the input of Limiter.ReleaseSlots.
type ReleaseSlotsParams struct {
	Key     string
	Holders []string
	Now     time.Time // zero: the current time
}

// SlotsParams is the input of Limiter.SlotsInUse.
type SlotsParams struct {
	Key string
	Now time.Time // zero: the current time
}

// Validate checks p's fields.
func (p TakeTokensParams) Validate() error {
	if p.Key == "" || p.Limit < 1 || p.Per <= 0 || p.Burst < 0 || p.Count < 0 {
		return fmt.Errorf("%w: token bucket needs a key, a limit of at least 1 and a positive interval", job.ErrInvalid)
	}
	return nil
}

// Sizes returns the bucket's size and the count asked for, defaults filled.
func (p TakeTokensParams) Sizes() (burst, count int) {
	return cmp.Or(p.Burst, p.Limit), cmp.Or(p.Count, 1)
}

// Validate checks p's fields.
func (p AcquireSlotsParams) Validate() error {
	if p.Key == "" || p.Limit < 1 || len(p.Holders) == 0 || slices.Contains(p.Holders, "") || p.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: slots need a key, a limit of at least 1, holders and an expiry", job.ErrInvalid)
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

// TakeTokens implements Limiter.
func (l KVLimiter) TakeTokens(ctx context.Context, p TakeTokensParams) (TakeTokensResult, error) {
	if err := p.Validate(); err != nil {
		return TakeTokensResult{}, err
	}
	now := KVNow(p.Now)
	burst, count := p.Sizes()
	key := "flow/rate/" + p.Key
	for range kvCASAttempts {
		b, version, err := getJSON[kvBucket](ctx, l.KV, key, now)
		if err != nil {
			return TakeTokensResult{}, err
		}
		if version == 0 {
			b = kvBucket{Tokens: float64(burst), At: now}
		}
		tokens := Refill(b.Tokens, b.At, now, p.Limit, p.Per, burst)
		taken := min(count, int(math.Floor(tokens)))
		res := TakeTokensResult{Taken: taken}
		if taken < count {
			res.NextAt = NextToken(tokens-float64(taken), now, p.Limit, p.Per)
		}
		if taken == 0 {
			return res, nil
		}
		tokens -= float64(taken)
		// Once full again the bucket is the same as an absent one.
		full := now.Add(time.Duration(math.Ceil((float64(burst) - tokens) * float64(p.Per) / float64(p.Limit))))
		err = putJSON(ctx, l.KV, key, kvBucket{Tokens: tokens, At: now}, version, full.Add(time.Second), now)
		if errors.Is(err, job.ErrConflict) {
			continue
		}
		if err != nil {
			return TakeTokensResult{}, err
		}
		return res, nil
	}
	return TakeTokensResult{}, fmt.Errorf("rate limit %s: %w after %d attempts", p.Key, job.ErrConflict, kvCASAttempts)
}

// AcquireSlots implements Limiter.
func (l KVLimiter) AcquireSlots(ctx context.Context, p AcquireSlotsParams) ([]string, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	now := KVNow(p.Now)
	key := "flow/slots/" + p.Key
	for range kvCASAttempts {
		slots, version, err := l.liveSlots(ctx, key, now)
		if err != nil {
			return nil, err
		}
		var granted []string
		for _, h := range p.Holders {
			if _, held := slots[h]; held || len(slots) < p.Limit {
				slots[h] = p.ExpiresAt
				granted = append(granted, h)
			}
		}
		if len(granted) == 0 {
			return nil, nil
		}
		err = putJSON(ctx, l.KV, key, slots, version, latest(slots), now)
		if errors.Is(err, job.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return granted, nil
	}
	return nil, fmt.Errorf("concurrency limit %s: %w after %d attempts", p.Key, job.ErrConflict, kvCASAttempts)
}

// ReleaseSlots implements Limiter.
func (l KVLimiter) ReleaseSlots(ctx context.Context, p ReleaseSlotsParams) error {
	key := "flow/slots/" + p.Key
	now := KVNow(p.Now)
	for range kvCASAttempts {
		slots, version, err := l.liveSlots(ctx, key, now)
		if err != nil {
			return err
		}
		n := len(slots)
		for _, h := range p.Holders {
			delete(slots, h)
		}
		switch {
		case len(slots) == n:
			return nil // none held
		case len(slots) == 0:
			err = l.KV.DeleteKV(ctx, DeleteKVParams{Key: key, IfVersion: version})
		default:
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
