-- Debounce (debounce.go). ARGV: now, debounce key, window ms, max wait ms
-- (0: none), max depth, then the job: id, task, payload, priority, max
-- deliveries, timeout, retry policy, headers.
-- <base>:deb is a hash, debounce key -> the key's last job ID.
-- Returns {id, state, replaced 0/1} or {'full', depth, adding, bound}.
local now, dkey, window, maxwait, bound = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local id, payload, headers = ARGV[6], ARGV[8], ARGV[13]
local DEB = base .. ':deb'

local function runat(created)
  local at = now + window
  if maxwait > 0 and created + maxwait < at then at = created + maxwait end
  return at
end
local function due(at)
  if at <= now then return 'pending' end
  return 'scheduled'
end

-- The key's job, if still waiting, takes the payload and headers and moves
-- to its new run time: out of the ready set or later, back into one.
local cur = redis.call('HGET', DEB, dkey)
local f = cur and fields(cur, 's', 'ca', 'pr', 'seq', 'rk')
if f and (f[1] == 'pending' or f[1] == 'scheduled') then
  local at = runat(num(f[2]))
  local state, seq = due(at), num(f[4])
  if f[5] and f[5] ~= '' then redis.call('ZREM', READY, f[5]) end
  redis.call('ZREM', LATER, cur)
  redis.call('HSET', jk(cur), 's', state, 'p', payload, 'ra', at)
  if headers ~= '' then redis.call('HSET', jk(cur), 'h', headers) else redis.call('HDEL', jk(cur), 'h') end
  move(cur, f[1], state, seq)
  if state == 'pending' then makeready(cur, num(f[3]), at, seq) else zadd(LATER, at, cur) end
  announce(state == 'pending')
  return {cur, state, 1}
end

if redis.call('EXISTS', jk(id)) == 1 then return {id, redis.call('HGET', jk(id), 's') or '', 1} end
if bound > 0 then
  local d = depth()
  if d + 1 > bound then return {'full', d, 1, bound} end
end
local at = runat(now)
local state, prio = due(at), num(ARGV[9])
local seq = redis.call('INCR', base .. ':seq')
local h = {'s', state, 't', ARGV[7], 'p', payload, 'pr', prio, 'ra', at, 'ca', now, 'md', ARGV[10], 'seq', seq}
for _, opt in ipairs({{'to', 11}, {'rp', 12}, {'h', 13}}) do
  local v = ARGV[opt[2]]
  if v ~= '' and v ~= '0' then
    table.insert(h, opt[1])
    table.insert(h, v)
  end
end
redis.call('HSET', jk(id), unpack(h))
zadd(sk(state), seq, id)
if state == 'pending' then makeready(id, prio, at, seq) else zadd(LATER, at, id) end
redis.call('HSET', DEB, dkey, id)
announce(state == 'pending')
return {id, state, 0}
