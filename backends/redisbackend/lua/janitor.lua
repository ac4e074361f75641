-- Housekeeping for one queue, run by any client every few seconds under a
-- cluster-wide lock: recover expired leases, promote due jobs, prune
-- finished jobs past their retention, reconcile the state sets with the job
-- hashes. ARGV: now, limit, keep-dead ms, members to reconcile.
-- Returns {made due, fin entries handled, STRAYS, CORRUPT, moved} where
-- moved holds (id, set it was in, state it has) triples.
local now, limit, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local due = promote(now, limit, keep)
local handled = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', FIN, '-inf', now, 'LIMIT', 0, limit)) do
  handled = handled + 1
  local f = fields(id, 's', 'rk', 'uk')
  if not usable(id, f, now, keep) then
    -- cleared or dead-lettered (and filed again for pruning), to be reported
  elseif not finished(f[1]) then
    redis.call('ZREM', FIN, id) -- replayed since; not ours to prune
  else
    remove(id, f[1], f[2], f[3])
  end
end
flushz()

-- reconcile checks up to budget state-set members against their hashes, so
-- drift from whatever wrote to Redis besides these scripts heals: a member
-- without a usable hash goes through usable; one whose hash names another
-- state leaves this set for that one. The walk goes set by set in seq order
-- from the cursor in <base>:rc, so each run costs O(budget log n) and
-- successive runs cover every set. Members sharing a score (seqs are
-- unique; hand-written entries may not be) can be passed over when a run
-- stops between them, until a run starts before them.
local function reconcile(budget)
  local moved = {}
  local si, after = string.match(redis.call('GET', base .. ':rc') or '', '^(%d+) ?(%S*)$')
  si = tonumber(si)
  if after == '' then after = nil end
  if not si or si < 1 or si > #STATES then si, after = 1, nil end
  for _ = 1, #STATES do
    if budget <= 0 then break end
    local st = STATES[si]
    local page = redis.call('ZRANGEBYSCORE', sk(st), after and '(' .. after or '-inf', '+inf',
      'WITHSCORES', 'LIMIT', 0, budget)
    for i = 1, #page, 2 do
      local id = page[i]
      after = page[i + 1]
      local f = fields(id, 's', 'seq')
      if usable(id, f, now, keep) and f[1] ~= st then
        redis.call('ZREM', sk(st), id)
        redis.call('ZADD', sk(f[1]), num(f[2]), id)
        table.insert(moved, id)
        table.insert(moved, st)
        table.insert(moved, f[1])
      end
    end
    budget = budget - #page / 2
    if budget > 0 then -- this set is done: on to the next, wrapping around
      si, after = si % #STATES + 1, nil
    end
  end
  redis.call('SET', base .. ':rc', si .. ' ' .. (after or ''))
  return moved
end

-- The group index of a queue served fairly (reserve_fair.lua) is dropped
-- once no fair reserve came for a while. While it is used, a group with no
-- due job that was not served in the ring's last round leaves it, so that
-- idle tenants cost fair reserves nothing; it joins again, as new, when a
-- job of it is due.
local function pruneRing()
  if redis.call('EXISTS', RING) == 0 then return end
  if redis.call('EXISTS', base .. ':fair') == 0 then
    for _, g in ipairs(redis.call('ZRANGE', RING, 0, -1)) do redis.call('UNLINK', gk(g)) end
    redis.call('DEL', RING, base .. ':fairbuild', base .. ':turn')
    return
  end
  local top = redis.call('ZRANGE', RING, -1, -1, 'WITHSCORES')
  local lastRound = num(top[2]) - redis.call('ZCARD', RING)
  for _, g in ipairs(redis.call('ZRANGEBYSCORE', RING, '-inf', lastRound)) do
    if redis.call('EXISTS', gk(g)) == 0 then
      redis.call('ZREM', RING, g)
      redis.call('HDEL', base .. ':turn', g)
    end
  end
end
pruneRing()

local moved = reconcile(tonumber(ARGV[4]))
announce(due > 0)
return {due, handled, STRAYS, CORRUPT, moved}
