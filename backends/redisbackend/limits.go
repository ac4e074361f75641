package redisbackend

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
)

// The Limiter natively: each bucket and each slot set is one key, changed
// by one script run, so a take or an acquire is one round trip however
// many workers contend, where the KV fallback's compare-and-set retries.
// Each key has a hash tag of its own ({flow:<key>}): limits spread over a
// cluster's slots, and a script touches one key. Expiry is Redis's own
// (PEXPIRE, relative, so an injected clock ahead of the server's does not
// drop a key early): a full bucket and a set with no live slot vanish.
var _ backends.Limiter = (*Backend)(nil)

// bucketScript: KEYS[1] the bucket (hash t tokens, at ms); ARGV limit, per
// (ms, fractional), burst, now ms -> {1, 0} taken, or {0, next token ms}.
var bucketScript = redis.NewScript(`
local limit, per, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens, at = tonumber(h[1]), tonumber(h[2])
if not tokens then tokens, at = burst, now end
if now > at then tokens = tokens + (now - at) * limit / per; at = now end
tokens = math.min(tokens, burst)
if tokens < 1 then return {0, math.ceil(now + (1 - tokens) * per / limit)} end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', at)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * per / limit) + 1000)
return {1, 0}
`)

// slotScript: KEYS[1] the slot set (sorted set holder -> expiry ms); ARGV
// action, now ms, then acquire: holder, limit, expiry ms -> 1 or 0;
// release: holder; list -> holder, expiry, ...
var slotScript = redis.NewScript(`
local action, now = ARGV[1], tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if action == 'acquire' then
  local holder, limit = ARGV[3], tonumber(ARGV[4])
  if not redis.call('ZSCORE', KEYS[1], holder) and redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
  redis.call('ZADD', KEYS[1], ARGV[5], holder)
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', KEYS[1], math.max(tonumber(last[2]) - now, 0) + 1000)
  return 1
elseif action == 'release' then
  return redis.call('ZREM', KEYS[1], ARGV[3])
end
return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
`)

func (b *Backend) flowKey(key, kind string) string {
	return b.cfg.Prefix + ":{flow:" + key + "}:" + kind
}

// TakeToken implements backends.Limiter.
func (b *Backend) TakeToken(ctx context.Context, p backends.TakeTokenParams) (backends.TakeTokenResult, error) {
	if err := p.Validate(); err != nil {
		return backends.TakeTokenResult{}, err
	}
	if err := b.gate.Check(ctx); err != nil {
		return backends.TakeTokenResult{}, err
	}
	burst := p.Burst
	if burst == 0 {
		burst = p.Limit
	}
	per := strconv.FormatFloat(float64(p.Per)/float64(time.Millisecond), 'g', -1, 64)
	v, err := bucketScript.Run(ctx, b.rdb, []string{b.flowKey(p.Key, "bucket")},
		p.Limit, per, burst, record.Millis(backends.KVNow(p.Now))).Int64Slice()
	if err != nil {
		return backends.TakeTokenResult{}, fmt.Errorf("redisbackend: take a token of %s: %w", p.Key, err)
	}
	if v[0] == 1 {
		return backends.TakeTokenResult{OK: true}, nil
	}
	return backends.TakeTokenResult{NextAt: record.FromMillis(v[1])}, nil
}

// AcquireSlot implements backends.Limiter.
func (b *Backend) AcquireSlot(ctx context.Context, p backends.AcquireSlotParams) (bool, error) {
	if err := p.Validate(); err != nil {
		return false, err
	}
	n, err := b.slots(ctx, p.Key, "acquire", p.Now, p.Holder, p.Limit, record.Millis(p.ExpiresAt)).Int64()
	if err != nil {
		return false, fmt.Errorf("redisbackend: acquire a slot of %s: %w", p.Key, err)
	}
	return n == 1, nil
}

// ReleaseSlot implements backends.Limiter.
func (b *Backend) ReleaseSlot(ctx context.Context, p backends.ReleaseSlotParams) error {
	if err := b.slots(ctx, p.Key, "release", p.Now, p.Holder).Err(); err != nil {
		return fmt.Errorf("redisbackend: release a slot of %s: %w", p.Key, err)
	}
	return nil
}

// SlotsInUse implements backends.Limiter.
func (b *Backend) SlotsInUse(ctx context.Context, p backends.SlotsParams) (map[string]time.Time, error) {
	v, err := b.slots(ctx, p.Key, "list", p.Now).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisbackend: slots of %s: %w", p.Key, err)
	}
	out := make(map[string]time.Time, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		ms, _ := strconv.ParseInt(v[i+1], 10, 64)
		out[v[i]] = record.FromMillis(ms)
	}
	return out, nil
}

func (b *Backend) slots(ctx context.Context, key, action string, now time.Time, args ...any) *redis.Cmd {
	if err := b.gate.Check(ctx); err != nil {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	return slotScript.Run(ctx, b.rdb, []string{b.flowKey(key, "slots")}, append([]any{action, record.Millis(backends.KVNow(now))}, args...)...)
}
