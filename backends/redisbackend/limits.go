package redisbackend

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
)

// The Limiter natively: each bucket and each slot set is one key, and a
// batch of them is changed by one script run, so a batch's take or
// acquire is one round trip however many workers contend, where the KV
// fallback's compare-and-set retries. Each key has a hash tag of its own
// ({flow:<key>}): limits spread over a cluster's slots, so there a batch
// is a pipeline of one-key runs (split by node); on one server it is one
// run for all its keys, which cut the server CPU a concurrency limit over
// 16 keys adds by about 40% (docs/benchmarks.md, Flow control). Expiry is
// Redis's own (PEXPIRE, relative, so an injected clock ahead of the
// server's does not drop a key early): a full bucket and a set with no
// live slot vanish.
var (
	_ backends.Limiter        = (*Backend)(nil)
	_ backends.LimiterBatcher = (*Backend)(nil)
)

// bucketScript: KEYS the buckets (hash t tokens, at ms); ARGV per key now
// ms, limit, per (ms, fractional), burst, count -> per key {taken, next
// token ms or 0}.
var bucketScript = redis.NewScript(`
local out = {}
for k = 1, #KEYS do
  local a = 1 + (k - 1) * 5
  local now, limit, per, burst, count = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local h = redis.call('HMGET', KEYS[k], 't', 'at')
  local tokens, at = tonumber(h[1]), tonumber(h[2])
  if not tokens then tokens, at = burst, now end
  if now > at then tokens = tokens + (now - at) * limit / per; at = now end
  tokens = math.min(tokens, burst)
  local taken = math.min(count, math.floor(tokens))
  local left = tokens - taken
  local next = 0
  if taken < count then next = math.ceil(now + (1 - left) * per / limit) end
  if taken > 0 then
    redis.call('HSET', KEYS[k], 't', tostring(left), 'at', at)
    redis.call('PEXPIRE', KEYS[k], math.ceil((burst - left) * per / limit) + 1000)
  end
  out[k] = {taken, next}
end
return out
`)

// slotScript: KEYS the slot sets (sorted set holder -> expiry ms); ARGV
// action, then per key now ms and: acquire: limit, expiry ms, n, n
// holders; release: n, n holders; list: nothing -> per key the holders
// given a slot (acquire), 0 (release), holder, expiry, ... (list).
var slotScript = redis.NewScript(`
-- Members go to ZMSCORE, ZADD and ZREM 1,000 at a time: unpack's bound
-- is a few thousand values.
local function zmscore(key, i, j)
  local out = {}
  for c = i, j, 1000 do
    for _, v in ipairs(redis.call('ZMSCORE', key, unpack(ARGV, c, math.min(c + 999, j)))) do out[#out + 1] = v end
  end
  return out
end
local action, a, out = ARGV[1], 2, {}
for k = 1, #KEYS do
  local key, now = KEYS[k], tonumber(ARGV[a])
  a = a + 1
  if action == 'acquire' then
    local limit, exp, n = tonumber(ARGV[a]), ARGV[a + 1], tonumber(ARGV[a + 2])
    local first = a + 3
    a = first + n
    local held = redis.call('ZCARD', key)
    local granted, add = {}, {}
    if held + n <= limit then
      -- Room for every holder even if none has a slot yet (held counts
      -- expired slots too): all are granted without pruning or asking who
      -- holds one, the common case of a limit that is not full.
      for i = first, a - 1 do
        granted[#granted + 1] = ARGV[i]
        add[#add + 1] = exp
        add[#add + 1] = ARGV[i]
      end
    else
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      held = redis.call('ZCARD', key)
      local has = zmscore(key, first, a - 1)
      for i = 1, n do
        local h = ARGV[first + i - 1]
        if has[i] or held < limit then
          if not has[i] then held = held + 1 end
          granted[#granted + 1] = h
          add[#add + 1] = exp
          add[#add + 1] = h
        end
      end
    end
    if #granted > 0 then
      for c = 1, #add, 2000 do redis.call('ZADD', key, unpack(add, c, math.min(c + 1999, #add))) end
      -- The set lives as long as its latest slot: exp, unless one ends later.
      -- (exp stays a string for ZADD: a Lua number is sent as %.14g.)
      local ttl = math.max(tonumber(exp) - now, 0) + 1000
      if held == 0 or redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
    end
    out[k] = granted
  elseif action == 'release' then
    local n = tonumber(ARGV[a])
    for c = a + 1, a + n, 1000 do redis.call('ZREM', key, unpack(ARGV, c, math.min(c + 999, a + n))) end
    a = a + n + 1
    out[k] = 0
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    out[k] = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  end
end
return out
`)

func (b *Backend) flowKey(key, kind string) string {
	return b.cfg.Prefix + ":{flow:" + key + "}:" + kind
}

// limitsCall is a batch of keys for one limits script: head is its first
// arguments, args[i] those of keys[i].
type limitsCall struct {
	script *redis.Script
	head   []any
	keys   []string
	args   [][]any
}

func (c *limitsCall) add(key string, args ...any) {
	c.keys, c.args = append(c.keys, key), append(c.args, args)
}

// named names the call's keys in an error: the first, and how many more.
func (c limitsCall) named() string {
	if len(c.keys) == 1 {
		return c.keys[0]
	}
	return fmt.Sprintf("%s and %d more", c.keys[0], len(c.keys)-1)
}

// run runs the call and returns each key's reply, in keys' order: one
// script run on one server, a pipeline of one run per key on a cluster
// (sent by SHA; a run a node answers NOSCRIPT, as after a restart, is sent
// again with its body).
func (b *Backend) run(ctx context.Context, c limitsCall) ([]any, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	if !b.cluster {
		argv := slices.Clone(c.head)
		for _, a := range c.args {
			argv = append(argv, a...)
		}
		return c.script.Run(ctx, b.rdb, c.keys, argv...).Slice()
	}
	cmds := make([]*redis.Cmd, len(c.keys))
	send := func(which []int, body bool) {
		pipe := b.rdb.Pipeline()
		for _, i := range which {
			keys, argv := []string{c.keys[i]}, append(append([]any(nil), c.head...), c.args[i]...)
			if body {
				cmds[i] = c.script.Eval(ctx, pipe, keys, argv...)
			} else {
				cmds[i] = c.script.EvalSha(ctx, pipe, keys, argv...)
			}
		}
		_, _ = pipe.Exec(ctx) // each command keeps its own error
	}
	all := make([]int, len(c.keys))
	for i := range all {
		all[i] = i
	}
	send(all, false)
	var again []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		send(again, true)
	}
	out := make([]any, len(cmds))
	for i, cmd := range cmds {
		v, err := cmd.Slice()
		if err != nil {
			return nil, err
		}
		out[i] = v[0]
	}
	return out, nil
}

// stringsOf converts one key's reply of strings.
func stringsOf(v any) []string {
	vs, _ := v.([]any)
	out := make([]string, len(vs))
	for i, s := range vs {
		out[i], _ = s.(string)
	}
	return out
}

// TakeTokens implements backends.Limiter.
func (b *Backend) TakeTokens(ctx context.Context, p backends.TakeTokensParams) (backends.TakeTokensResult, error) {
	res, err := b.TakeTokensMany(ctx, []backends.TakeTokensParams{p})
	if err != nil {
		return backends.TakeTokensResult{}, err
	}
	return res[0], nil
}

// TakeTokensMany implements backends.LimiterBatcher.
func (b *Backend) TakeTokensMany(ctx context.Context, ps []backends.TakeTokensParams) ([]backends.TakeTokensResult, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	c := limitsCall{script: bucketScript}
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		burst, count := p.Sizes()
		per := strconv.FormatFloat(float64(p.Per)/float64(time.Millisecond), 'g', -1, 64)
		c.add(b.flowKey(p.Key, "bucket"), record.Millis(backends.KVNow(p.Now)), p.Limit, per, burst, count)
	}
	vs, err := b.run(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("redisbackend: take tokens of %s: %w", c.named(), err)
	}
	out := make([]backends.TakeTokensResult, len(ps))
	for i, v := range vs {
		pair, _ := v.([]any)
		if len(pair) != 2 {
			return nil, fmt.Errorf("redisbackend: take tokens of %s: reply %v", ps[i].Key, v)
		}
		taken, _ := pair[0].(int64)
		next, _ := pair[1].(int64)
		out[i].Taken = int(taken)
		if _, count := ps[i].Sizes(); out[i].Taken < count {
			out[i].NextAt = record.FromMillis(next)
		}
	}
	return out, nil
}

// AcquireSlots implements backends.Limiter.
func (b *Backend) AcquireSlots(ctx context.Context, p backends.AcquireSlotsParams) ([]string, error) {
	got, err := b.AcquireSlotsMany(ctx, []backends.AcquireSlotsParams{p})
	if err != nil {
		return nil, err
	}
	return got[0], nil
}

// AcquireSlotsMany implements backends.LimiterBatcher.
func (b *Backend) AcquireSlotsMany(ctx context.Context, ps []backends.AcquireSlotsParams) ([][]string, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	c := limitsCall{script: slotScript, head: []any{"acquire"}}
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		args := []any{record.Millis(backends.KVNow(p.Now)), p.Limit, record.Millis(p.ExpiresAt), len(p.Holders)}
		for _, h := range p.Holders {
			args = append(args, h)
		}
		c.add(b.flowKey(p.Key, "slots"), args...)
	}
	vs, err := b.run(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("redisbackend: acquire slots of %s: %w", c.named(), err)
	}
	out := make([][]string, len(vs))
	for i, v := range vs {
		out[i] = stringsOf(v)
	}
	return out, nil
}

// ReleaseSlots implements backends.Limiter.
func (b *Backend) ReleaseSlots(ctx context.Context, p backends.ReleaseSlotsParams) error {
	return b.ReleaseSlotsMany(ctx, []backends.ReleaseSlotsParams{p})
}

// ReleaseSlotsMany implements backends.LimiterBatcher.
func (b *Backend) ReleaseSlotsMany(ctx context.Context, ps []backends.ReleaseSlotsParams) error {
	var c limitsCall
	for _, p := range ps {
		if len(p.Holders) == 0 {
			continue
		}
		if c.script == nil {
			c = limitsCall{script: slotScript, head: []any{"release"}}
		}
		args := []any{record.Millis(backends.KVNow(p.Now)), len(p.Holders)}
		for _, h := range p.Holders {
			args = append(args, h)
		}
		c.add(b.flowKey(p.Key, "slots"), args...)
	}
	if c.script == nil {
		return nil
	}
	if _, err := b.run(ctx, c); err != nil {
		return fmt.Errorf("redisbackend: release slots of %s: %w", c.named(), err)
	}
	return nil
}

// SlotsInUse implements backends.Limiter.
func (b *Backend) SlotsInUse(ctx context.Context, p backends.SlotsParams) (map[string]time.Time, error) {
	c := limitsCall{script: slotScript, head: []any{"list"}}
	c.add(b.flowKey(p.Key, "slots"), record.Millis(backends.KVNow(p.Now)))
	vs, err := b.run(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("redisbackend: slots of %s: %w", p.Key, err)
	}
	v := stringsOf(vs[0])
	out := make(map[string]time.Time, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		ms, _ := strconv.ParseInt(v[i+1], 10, 64)
		out[v[i]] = record.FromMillis(ms)
	}
	return out, nil
}
