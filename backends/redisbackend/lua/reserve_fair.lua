-- ReserveFair: reserve.lua's leases in round-robin order across the queue's
-- groups (backends.FairReserver). ARGV as reserve.lua's first seven, then
-- the seconds <base>:fair lives without another fair reserve, how many jobs
-- a call indexes, how many weights follow (W), the groups weighted above 1,
-- each followed by its weight (2W values), and for ReserveSlots its rules
-- as reserve.lua takes them. Returns as reserve.lua; the rules apply to
-- the jobs in the rounds' order, and a group whose job they hold back has
-- had that job's turn.
--
-- The first fair reserve (or the first after <base>:fair expired) starts
-- indexing the queue's pending jobs by group, newest first, and each fair
-- reserve indexes up to ARGV[9] more until all are (<base>:fairbuild holds
-- where it is): a backlog of a million costs a hundred calls, not one long
-- script that blocks Redis. Newest first, so that a tenant that has just
-- enqueued is served while an older backlog is still being indexed. Every
-- write that makes a job due meanwhile indexes it too (groupready in the
-- prelude). A job taken by Reserve or changed by another script leaves
-- its group entry stale: its rk no longer matches, and it is dropped here
-- when met.
local now, limit, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[6])
if redis.call('EXISTS', base .. ':paused') == 1 then return {{}, {}, {}, {}} end
local BUILD = base .. ':fairbuild'
local from
if not redis.call('SET', base .. ':fair', 1, 'EX', ARGV[8], 'GET') then
  from = '+inf'
else
  from = redis.call('GET', BUILD)
end
if from then
  local page = redis.call('ZREVRANGEBYSCORE', sk('pending'), from, '-inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[9]))
  for i = 1, #page, 2 do
    local f = fields(page[i], 'rk', 'g', 'pr')
    if f and f[1] then groupready(f[2] or '', -num(f[3]), f[1]) end
  end
  flushz()
  if #page < 2 * tonumber(ARGV[9]) then
    redis.call('DEL', BUILD)
  else
    redis.call('SET', BUILD, '(' .. page[#page], 'EX', ARGV[8])
  end
end
FAIRQ[base] = true
promote(now, 1000, keep)

-- more takes up to want more due jobs of group c from its set, in
-- Reserve's order, dropping the entries it cannot lease (leasable).
local function more(c, want)
  while want > 0 and not c.done do
    local ms = redis.call('ZRANGE', c.key, c.off, c.off + want - 1)
    if #ms < want then c.done = true end
    for _, m in ipairs(ms) do
      local id, f = leasable(m, now, keep)
      if id then
        table.insert(c.got, {id, f, m, c.key})
        c.off, want = c.off + 1, want - 1
      else -- stale, stray or set aside: out of both sets
        redis.call('ZREM', c.key, m)
        redis.call('ZREM', READY, m)
      end
    end
  end
end

-- Round one: the first job of each group, groups least recently served
-- first (never served: by name), until limit groups have one. Groups
-- without a due job are passed over and keep their place.
local groups, off = {}, 0
while #groups < limit do
  local page = redis.call('ZRANGE', RING, off, off + 99)
  if #page == 0 then break end
  off = off + #page
  for _, g in ipairs(page) do
    local c = {g = g, key = gk(g), off = 0, got = {}}
    more(c, 1)
    if #c.got > 0 then
      table.insert(groups, c)
      if #groups == limit then break end
    end
  end
end
-- Then round by round: each group, in ring order, gives the jobs of its
-- turn (its weight) that fall in the round, a turn begun in an earlier
-- call going on from where it stopped (<base>:turn, read for weighted
-- groups only).
local W, TURN = {}, base .. ':turn'
local nw = tonumber(ARGV[10])
for i = 11, 10 + 2 * nw, 2 do W[ARGV[i]] = tonumber(ARGV[i + 1]) end
for _, c in ipairs(groups) do
  c.w, c.taken = W[c.g] or 1, 0
  c.turn = c.w > 1 and num(redis.call('HGET', TURN, c.g)) or 0
end
local picks = {}
for round = 0, limit do
  local any = false
  for _, c in ipairs(groups) do
    while #picks < limit and math.floor((c.turn + c.taken) / c.w) == round do
      if #c.got <= c.taken then more(c, limit - #picks) end
      local p = c.got[c.taken + 1]
      if not p then break end
      table.insert(picks, p)
      c.taken, any = c.taken + 1, true
      if (c.turn + c.taken) % c.w == 0 then c.last = #picks end
    end
  end
  if not any or #picks == limit then break end
end

local rules, header = rulesat(11 + 2 * nw)
local out, held, n = {}, {}, 0
for _, p in ipairs(picks) do
  redis.call('ZREM', READY, p[3])
  zrem(p[4], p[3])
  n = admit(p[1], p[2], now, n, out, rules, header, held)
end
-- Each group that finished a turn goes to the back of the ring, in the
-- order of the job that finished it, after every serving handed out
-- before; a weighted group keeps how far into its turn it is.
local top = redis.call('ZRANGE', RING, -1, -1, 'WITHSCORES')
local served = num(top[2])
for _, c in ipairs(groups) do
  if c.last then zadd(RING, served + c.last, c.g) end
  if c.w > 1 and c.taken > 0 then
    local t = (c.turn + c.taken) % c.w
    if t == 0 then redis.call('HDEL', TURN, c.g) else redis.call('HSET', TURN, c.g, t) end
  end
end
announce(false)
return {out, STRAYS, CORRUPT, heldrecords(held)}
