package backends

import (
	"cmp"
	"context"
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
// BucketKey(key) and a slot set SlotsKey(key), each a small JSON value
// changed by compare-and-set, expiring once it no longer matters (a full
// bucket, a set with no live slot). Contention on one key costs retries,
// not correctness.
type KVLimiter struct{ KV KVStore }

// kvCASAttempts bounds the compare-and-set retries of one call; past it
// the caller sees job.ErrConflict and holds its job back as if limited.
const kvCASAttempts = 64

// TakeTokens implements Limiter.
func (l KVLimiter) TakeTokens(ctx context.Context, p TakeTokensParams) (TakeTokensResult, error) {
	if err := p.Validate(); err != nil {
		return TakeTokensResult{}, err
	}
	var res TakeTokensResult
	err := l.cas(ctx, BucketKey(p.Key), KVNow(p.Now), func(value []byte, now time.Time) LimitWrite {
		w, r := TakeFrom(value, p, now)
		res = r
		return w
	})
	return res, err
}

// AcquireSlots implements Limiter.
func (l KVLimiter) AcquireSlots(ctx context.Context, p AcquireSlotsParams) ([]string, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var granted []string
	err := l.cas(ctx, SlotsKey(p.Key), KVNow(p.Now), func(value []byte, now time.Time) LimitWrite {
		w, g := AcquireFrom(value, p, now)
		granted = g
		return w
	})
	return granted, err
}

// ReleaseSlots implements Limiter.
func (l KVLimiter) ReleaseSlots(ctx context.Context, p ReleaseSlotsParams) error {
	return l.cas(ctx, SlotsKey(p.Key), KVNow(p.Now), func(value []byte, now time.Time) LimitWrite {
		return ReleaseFrom(value, p, now)
	})
}

// SlotsInUse implements Limiter.
func (l KVLimiter) SlotsInUse(ctx context.Context, p SlotsParams) (map[string]time.Time, error) {
	now := KVNow(p.Now)
	got, err := l.KV.GetKV(ctx, GetKVParams{Key: SlotsKey(p.Key), Now: now})
	if errors.Is(err, job.ErrNotFound) {
		return map[string]time.Time{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", SlotsKey(p.Key), err)
	}
	return LiveSlots(got.Value, now), nil
}

// cas applies change to key's value by compare-and-set until no one
// wrote in between.
func (l KVLimiter) cas(ctx context.Context, key string, now time.Time, change func(value []byte, now time.Time) LimitWrite) error {
	for range kvCASAttempts {
		var value []byte
		var version int64
		got, err := l.KV.GetKV(ctx, GetKVParams{Key: key, Now: now})
		switch {
		case errors.Is(err, job.ErrNotFound):
		case err != nil:
			return fmt.Errorf("read %s: %w", key, err)
		default:
			value, version = got.Value, got.Version
		}
		w := change(value, now)
		switch {
		case !w.Changed:
			return nil
		case w.Value == nil && version == 0:
			return nil
		case w.Value == nil:
			err = l.KV.DeleteKV(ctx, DeleteKVParams{Key: key, IfVersion: version})
		default:
			_, err = l.KV.PutKV(ctx, PutKVParams{Key: key, Value: w.Value, IfVersion: version, ExpiresAt: w.ExpiresAt, Now: now})
		}
		if errors.Is(err, job.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("limit %s: %w after %d attempts", key, job.ErrConflict, kvCASAttempts)
}
