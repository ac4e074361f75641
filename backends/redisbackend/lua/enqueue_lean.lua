-- The enqueue of a batch for one queue with no bound and no unique keys,
-- the common case, without the prelude: the full script's top level (its
-- tables and closures) costs more than a one-job enqueue's own writes, and
-- here each new job is two commands (EXISTS, HSET with its ready-set member)
-- plus one variadic ZADD per set for the whole batch. The key layout is
-- prelude.lua's. KEYS[1]: the queue's base key. ARGV: now, then per job 9
-- fields: id, task, payload, priority, run_at, max deliveries, timeout,
-- retry policy, headers. Returns {'ok', (id, state, dup)...}, as
-- enqueue.lua does.
local base, now = KEYS[1], tonumber(ARGV[1])
-- variadic runs cmd on key with the list's elements, 1,000 at a time, as
-- prelude.lua's does: unpack of a longer list fails after the HSETs above
-- it were made, which would leave the batch half written.
local function variadic(cmd, key, l)
  for i = 1, #l, 1000 do redis.call(cmd, key, unpack(l, i, math.min(i + 999, #l))) end
end
local F = 9
local n = (#ARGV - 1) / F
-- One INCRBY for the batch: a duplicate leaves a gap, and the sequence only
-- orders.
local seq = redis.call('INCRBY', base .. ':seq', n) - n
local out = {'ok'}
local ready, later, pending, scheduled = {}, {}, {}, {}
for i = 0, n - 1 do
  local o = 2 + i * F
  local id = ARGV[o]
  local jk = base .. ':j:' .. id
  seq = seq + 1
  -- An ID seen before (a retried call, or twice in this batch: the first
  -- is written by then) is a duplicate.
  if redis.call('EXISTS', jk) == 1 then
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', jk, 's') or ''
    out[#out + 1] = 1
  else
    local prio, runat = tonumber(ARGV[o + 3]) or 0, tonumber(ARGV[o + 4]) or 0
    if runat <= 0 then runat = now end
    local state = 'pending'
    if runat > now then state = 'scheduled' end
    local h = {'s', state, 't', ARGV[o + 1], 'p', ARGV[o + 2], 'pr', prio, 'ra', runat, 'ca', now,
      'md', ARGV[o + 5], 'seq', seq}
    -- Empty optional fields are left out, as enqueue.lua does.
    local v = ARGV[o + 6]
    if v ~= '' and v ~= '0' then h[#h + 1] = 'to'; h[#h + 1] = v end
    v = ARGV[o + 7]
    if v ~= '' and v ~= '0' then h[#h + 1] = 'rp'; h[#h + 1] = v end
    v = ARGV[o + 8]
    if v ~= '' and v ~= '0' then h[#h + 1] = 'h'; h[#h + 1] = v end
    if state == 'pending' then
      local rk = string.format('%013d:%016d:', runat, seq) .. id
      h[#h + 1] = 'rk'
      h[#h + 1] = rk
      ready[#ready + 1] = -prio
      ready[#ready + 1] = rk
      pending[#pending + 1] = seq
      pending[#pending + 1] = id
    else
      later[#later + 1] = runat
      later[#later + 1] = id
      scheduled[#scheduled + 1] = seq
      scheduled[#scheduled + 1] = id
    end
    redis.call('HSET', jk, unpack(h))
    out[#out + 1] = id
    out[#out + 1] = state
    out[#out + 1] = 0
  end
end
if #pending > 0 then
  variadic('ZADD', base .. ':s:pending', pending)
  variadic('ZADD', base .. ':ready', ready)
end
if #scheduled > 0 then
  variadic('ZADD', base .. ':s:scheduled', scheduled)
  variadic('ZADD', base .. ':later', later)
end
if #ready > 0 then redis.call('PUBLISH', base .. ':avail', '') end
return out
