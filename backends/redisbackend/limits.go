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
// (ms, fractional), burst, count, now ms -> {taken, next token ms or 0}.
var bucketScript = redis.NewScript(`
local limit, per, burst, count, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local h = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens, at = tonumber(h[1]), tonumber(h[2])
if not tokens then tokens, at = burst, now end
if now > at then tokens = tokens + (now - at) * limit / per; at = now end
tokens = math.min(tokens, burst)
local taken = math.min(count, math.floor(tokens))
local left = tokens - taken
local next = 0
if taken < count then next = math.ceil(now + (1 - left) * per / limit) end
if taken > 0 then
  redis.call('HSET', KEYS[1], 't', tostring(left), 'at', at)
  redis.call('PEXPIRE', KEYS[1], math.ceil((burst - left) * per / limit) + 1000)
end
return {taken, next}
`)

// slotScript: KEYS[1] the slot set (sorted set holder -> expiry ms); ARGV
// action, now ms, then acquire: limit, expiry ms, holders... -> the
// holders given a slot; release: holders...; list -> holder, expiry, ...
var slotScript = redis.NewScript(`
local action, now = ARGV[1], tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if action == 'acquire' then
  local limit, exp, n = tonumber(ARGV[3]), ARGV[4], redis.call('ZCARD', KEYS[1])
  local granted = {}
  for i = 5, #ARGV do
    local held = redis.call('ZSCORE', KEYS[1], ARGV[i])
    if held or n < limit then
      if not held then n = n + 1 end
      redis.call('ZADD', KEYS[1], exp, ARGV[i])
      granted[#granted + 1] = ARGV[i]
    end
  end
  if #granted > 0 then
    local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
    redis.call('PEXPIRE', KEYS[1], math.max(tonumber(last[2]) - now, 0) + 1000)
  end
  return granted
elseif action == 'release' then
  for i = 3, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
  return 0
end
return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
`)

func (b *Backend) flowKey(key, kind string) string {
	return b.cfg.Prefix + ":{flow:" + key + "}:" + kind
}

var _ backends.LimiterBatcher = (*Backend)(nil)

// scriptCall is one run of a limits script, alone or in a pipeline.
type scriptCall struct {
	script *redis.Script
	key    string
	args   []any
}

func (b *Backend) bucketCall(p backends.TakeTokensParams) (scriptCall, error) {
	if err := p.Validate(); err != nil {
		return scriptCall{}, err
	}
	burst, count := p.Sizes()
	per := strconv.FormatFloat(float64(p.Per)/float64(time.Millisecond), 'g', -1, 64)
	return scriptCall{bucketScript, b.flowKey(p.Key, "bucket"),
		[]any{p.Limit, per, burst, count, record.Millis(backends.KVNow(p.Now))}}, nil
}

func (b *Backend) acquireCall(p backends.AcquireSlotsParams) (scriptCall, error) {
	if err := p.Validate(); err != nil {
		return scriptCall{}, err
	}
	args := []any{"acquire", record.Millis(backends.KVNow(p.Now)), p.Limit, record.Millis(p.ExpiresAt)}
	for _, h := range p.Holders {
		args = append(args, h)
	}
	return scriptCall{slotScript, b.flowKey(p.Key, "slots"), args}, nil
}

func (b *Backend) releaseCall(p backends.ReleaseSlotsParams) scriptCall {
	args := []any{"release", record.Millis(backends.KVNow(p.Now))}
	for _, h := range p.Holders {
		args = append(args, h)
	}
	return scriptCall{slotScript, b.flowKey(p.Key, "slots"), args}
}

func (b *Backend) run(ctx context.Context, c scriptCall) *redis.Cmd {
	if err := b.gate.Check(ctx); err != nil {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	return c.script.Run(ctx, b.rdb, []string{c.key}, c.args...)
}

// runMany sends the calls in one pipeline (a cluster client splits it by
// node), by SHA; calls a server answers NOSCRIPT (it restarted and forgot
// the scripts) are sent again with their bodies.
func (b *Backend) runMany(ctx context.Context, calls []scriptCall) ([]*redis.Cmd, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	cmds := make([]*redis.Cmd, len(calls))
	send := func(which []int, body bool) {
		pipe := b.rdb.Pipeline()
		for _, i := range which {
			c := calls[i]
			if body {
				cmds[i] = c.script.Eval(ctx, pipe, []string{c.key}, c.args...)
			} else {
				cmds[i] = c.script.EvalSha(ctx, pipe, []string{c.key}, c.args...)
			}
		}
		_, _ = pipe.Exec(ctx) // each command keeps its own error
	}
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	send(all, false)
	var again []int
	for i, c := range cmds {
		if err := c.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		send(again, true)
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return nil, err
		}
	}
	return cmds, nil
}

func tokensFrom(v []int64, count int) backends.TakeTokensResult {
	res := backends.TakeTokensResult{Taken: int(v[0])}
	if res.Taken < count {
		res.NextAt = record.FromMillis(v[1])
	}
	return res
}

// TakeTokens implements backends.Limiter.
func (b *Backend) TakeTokens(ctx context.Context, p backends.TakeTokensParams) (backends.TakeTokensResult, error) {
	c, err := b.bucketCall(p)
	if err != nil {
		return backends.TakeTokensResult{}, err
	}
	v, err := b.run(ctx, c).Int64Slice()
	if err != nil {
		return backends.TakeTokensResult{}, fmt.Errorf("redisbackend: take tokens of %s: %w", p.Key, err)
	}
	_, count := p.Sizes()
	return tokensFrom(v, count), nil
}

// TakeTokensMany implements backends.LimiterBatcher.
func (b *Backend) TakeTokensMany(ctx context.Context, ps []backends.TakeTokensParams) ([]backends.TakeTokensResult, error) {
	calls := make([]scriptCall, len(ps))
	for i, p := range ps {
		c, err := b.bucketCall(p)
		if err != nil {
			return nil, err
		}
		calls[i] = c
	}
	cmds, err := b.runMany(ctx, calls)
	if err != nil {
		return nil, fmt.Errorf("redisbackend: take tokens of %d buckets: %w", len(ps), err)
	}
	out := make([]backends.TakeTokensResult, len(ps))
	for i, cmd := range cmds {
		v, err := cmd.Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("redisbackend: take tokens of %s: %w", ps[i].Key, err)
		}
		_, count := ps[i].Sizes()
		out[i] = tokensFrom(v, count)
	}
	return out, nil
}

// AcquireSlots implements backends.Limiter.
func (b *Backend) AcquireSlots(ctx context.Context, p backends.AcquireSlotsParams) ([]string, error) {
	c, err := b.acquireCall(p)
	if err != nil {
		return nil, err
	}
	granted, err := b.run(ctx, c).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisbackend: acquire slots of %s: %w", p.Key, err)
	}
	return granted, nil
}

// AcquireSlotsMany implements backends.LimiterBatcher.
func (b *Backend) AcquireSlotsMany(ctx context.Context, ps []backends.AcquireSlotsParams) ([][]string, error) {
	calls := make([]scriptCall, len(ps))
	for i, p := range ps {
		c, err := b.acquireCall(p)
		if err != nil {
			return nil, err
		}
		calls[i] = c
	}
	cmds, err := b.runMany(ctx, calls)
	if err != nil {
		return nil, fmt.Errorf("redisbackend: acquire slots of %d sets: %w", len(ps), err)
	}
	out := make([][]string, len(ps))
	for i, cmd := range cmds {
		if out[i], err = cmd.StringSlice(); err != nil {
			return nil, fmt.Errorf("redisbackend: acquire slots of %s: %w", ps[i].Key, err)
		}
	}
	return out, nil
}

// ReleaseSlots implements backends.Limiter.
func (b *Backend) ReleaseSlots(ctx context.Context, p backends.ReleaseSlotsParams) error {
	if len(p.Holders) == 0 {
		return nil
	}
	if err := b.run(ctx, b.releaseCall(p)).Err(); err != nil {
		return fmt.Errorf("redisbackend: release slots of %s: %w", p.Key, err)
	}
	return nil
}

// ReleaseSlotsMany implements backends.LimiterBatcher.
func (b *Backend) ReleaseSlotsMany(ctx context.Context, ps []backends.ReleaseSlotsParams) error {
	calls := make([]scriptCall, 0, len(ps))
	for _, p := range ps {
		if len(p.Holders) > 0 {
			calls = append(calls, b.releaseCall(p))
		}
	}
	if len(calls) == 0 {
		return nil
	}
	if _, err := b.runMany(ctx, calls); err != nil {
		return fmt.Errorf("redisbackend: release slots of %d sets: %w", len(calls), err)
	}
	return nil
}

// SlotsInUse implements backends.Limiter.
func (b *Backend) SlotsInUse(ctx context.Context, p backends.SlotsParams) (map[string]time.Time, error) {
	v, err := b.run(ctx, scriptCall{slotScript, b.flowKey(p.Key, "slots"), []any{"list", record.Millis(backends.KVNow(p.Now))}}).StringSlice()
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
