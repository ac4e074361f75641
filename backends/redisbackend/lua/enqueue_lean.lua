-- The enqueue of a batch for one queue with no bound and no unique keys,
-- the common case, without the prelude: the full script's top level (its
-- tables and closures) costs more than a one-job enqueue's own writes.
-- The caller works out each job's state and scores, so that per job the
-- script runs one HSET that also holds the ready-set member (and an EXISTS
-- only when an ID of the batch exists already), and per batch one INCRBY,
-- one EXISTS of all the batch's keys and one variadic ZADD per set. The
-- key layout is prelude.lua's.
-- KEYS[1]: the queue's base key. ARGV: the number of jobs, now, then per
-- job 10 values and its optional fields: id, state ('pending' or
-- 'scheduled'), score (-priority in the ready set, or the run-at for the
-- later set), the ready member's prefix (run-at ms, 13 digits, and ':'),
-- task, payload, priority, run-at, max deliveries, the number of values
-- that follow, and those: field-value pairs of the hash's optional fields
-- (to, rp, h, g) that are set, g (the group) last.
-- Returns {'ok', (id, state, dup)...}, as enqueue.lua does.
local base = KEYS[1]
local n, now = tonumber(ARGV[1]), ARGV[2]
local jk, at = {}, {}
local o = 3
for i = 1, n do
  at[i] = o
  jk[i] = base .. ':j:' .. ARGV[o]
  o = o + 10 + tonumber(ARGV[o + 9])
end
-- All the batch's keys, 1,000 at a time: unpack of a longer list fails
-- past Lua's C stack. None existing is the rule, as IDs are mostly made up
-- by the client, and spares a check per job.
local found = 0
for i = 1, n, 1000 do found = found + redis.call('EXISTS', unpack(jk, i, math.min(i + 999, n))) end
-- One INCRBY for the batch: a duplicate leaves a gap, and the sequence only
-- orders.
local seq = redis.call('INCRBY', base .. ':seq', n) - n
local out = {'ok'}
local ready, pending, later, scheduled = {}, {}, {}, {}
-- A queue served fairly also indexes its due jobs by group (prelude.lua).
local fair, groups = redis.call('EXISTS', base .. ':fair') == 1, {}
local seen = {}
for i = 1, n do
  local o = at[i]
  local id, state = ARGV[o], ARGV[o + 1]
  seq = seq + 1
  -- An ID seen before (a retried call, or twice in this batch) is a
  -- duplicate.
  local dup
  if found > 0 then
    dup = redis.call('EXISTS', jk[i]) == 1 -- the first of a pair is written by now
  else
    dup = seen[id]
    seen[id] = true
  end
  if dup then
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', jk[i], 's') or ''
    out[#out + 1] = 1
  else
    local last = o + 9 + tonumber(ARGV[o + 9])
    -- The sequence as a string once: each number Redis is given from Lua
    -- is formatted anew, and so is string.format's.
    local sq = tostring(seq)
    if state == 'pending' then
      local rk = ARGV[o + 3] .. string.rep('0', 16 - #sq) .. sq .. ':' .. id
      redis.call('HSET', jk[i], 's', state, 't', ARGV[o + 4], 'p', ARGV[o + 5], 'pr', ARGV[o + 6], 'ra', ARGV[o + 7],
        'ca', now, 'md', ARGV[o + 8], 'seq', sq, 'rk', rk, unpack(ARGV, o + 10, last))
      ready[#ready + 1] = ARGV[o + 2]
      ready[#ready + 1] = rk
      if fair then
        local g = ''
        if last > o + 10 and ARGV[last - 1] == 'g' then g = ARGV[last] end
        local l = groups[g] or {}
        groups[g] = l
        l[#l + 1] = ARGV[o + 2]
        l[#l + 1] = rk
      end
      pending[#pending + 1] = sq
      pending[#pending + 1] = id
    else
      redis.call('HSET', jk[i], 's', state, 't', ARGV[o + 4], 'p', ARGV[o + 5], 'pr', ARGV[o + 6], 'ra', ARGV[o + 7],
        'ca', now, 'md', ARGV[o + 8], 'seq', sq, unpack(ARGV, o + 10, last))
      later[#later + 1] = ARGV[o + 2]
      later[#later + 1] = id
      scheduled[#scheduled + 1] = sq
      scheduled[#scheduled + 1] = id
    end
    out[#out + 1] = id
    out[#out + 1] = state
    out[#out + 1] = 0
  end
end
-- variadic runs cmd on key with the list's elements, 1,000 at a time (an
-- even count, so score-member pairs stay whole).
local function variadic(cmd, key, l)
  for i = 1, #l, 1000 do redis.call(cmd, key, unpack(l, i, math.min(i + 999, #l))) end
end
if #pending > 0 then
  variadic('ZADD', base .. ':s:pending', pending)
  variadic('ZADD', base .. ':ready', ready)
  for g, l in pairs(groups) do
    variadic('ZADD', base .. ':gr:' .. g, l)
    redis.call('ZADD', base .. ':ring', 'NX', 0, g)
  end
  redis.call('PUBLISH', base .. ':avail', '')
end
if #scheduled > 0 then
  variadic('ZADD', base .. ':s:scheduled', scheduled)
  variadic('ZADD', base .. ':later', later)
end
return out
