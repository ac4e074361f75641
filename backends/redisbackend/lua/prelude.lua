-- Shared by every script (prepended by scripts.go). KEYS[1] is the queue's
-- base key, "<prefix>:{<queue>}"; every key a script touches starts with it,
-- so in Redis Cluster all of them live in the queue's hash slot.
--
-- Per queue:
--   <base>:j:<id>   hash, one job (field names in record.go)
--   <base>:s:<st>   zset by state, score = enqueue sequence: counts and lists
--   <base>:ready    zset of due jobs, score = -priority, member =
--                   "<run_at ms, 13 digits>:<seq, 16 digits>:<id>", so equal
--                   scores order by run-at, then enqueue order
--   <base>:later    zset of waiting jobs not yet due, score = run_at ms
--   <base>:leased   zset of running jobs, score = lease expiry ms
--   <base>:fin      zset of finished jobs, score = when they may be pruned
--   <base>:uniq     hash, unique key -> job ID that took it
--   <base>:seq      enqueue sequence counter
--   <base>:paused   exists while the queue is paused
--   <base>:rc       the janitor's reconcile cursor, "<state index> <seq>"
-- While the queue is served fairly (reserve_fair.lua), its due jobs are also
-- indexed by group (the hash's field g, "" when it has none):
--   <base>:fair     exists while fair reserves come (they renew its expiry)
--   <base>:gr:<g>   zset of group g's due jobs, as the ready set; entries
--                   the ready set lost are stale, dropped when met
--   <base>:ring     zset of the groups, score = when last served (0 never)
local base, READY, LATER, LEASED, FIN, RING
local function use(b)
  base = b
  READY, LATER, LEASED, FIN, RING = b .. ':ready', b .. ':later', b .. ':leased', b .. ':fin', b .. ':ring'
end
use(KEYS[1])

local function jk(id) return base .. ':j:' .. id end

-- RECORD is the order in which scripts return a job's fields (HMGET), the
-- order record.go decodes. The job's ID and queue are not stored: the key
-- names them.
local RECORD = {'s', 't', 'p', 'h', 'pr', 'ra', 'ca', 'sa', 'fa', 'd', 'md', 'to', 'rp',
  'uk', 'uu', 'e', 'r', 'tk', 'le', 'c', 'w', 'seq'}
local F = {}
for i, name in ipairs(RECORD) do F[name] = i end
-- READ is RECORD plus the ready-set member, for reserve.
local READ = {unpack(RECORD)}
table.insert(READ, 'rk')
local RK = #READ

local function record(id)
  local f = redis.pcall('HMGET', jk(id), unpack(RECORD))
  if type(f) ~= 'table' or f.err then return {} end
  return f
end
local function sk(state) return base .. ':s:' .. state end
local function num(v) return tonumber(v) or 0 end
local function finished(s) return s == 'done' or s == 'dead' or s == 'cancelled' end
-- STATES are the states a job hash may name, each with its set <base>:s:<st>.
local STATES = {'pending', 'scheduled', 'retrying', 'running', 'done', 'dead', 'cancelled'}
local KNOWN = {}
for _, st in ipairs(STATES) do KNOWN[st] = true end

-- fields reads a job's hash fields; nil when the key is not a hash (a
-- malformed entry must not abort the script and wedge the queue).
local function fields(id, ...)
  local f = redis.pcall('HMGET', jk(id), ...)
  if type(f) ~= 'table' or f.err then return nil end
  return f
end

-- Sorted-set writes are gathered per key and flushed as one variadic ZREM
-- and one ZADD per key (flushz), because each redis.call from Lua costs
-- more than the command itself. A job may change state at most once
-- between flushes: promote flushes before anything else runs.
-- RINGNX holds groups new to the ring (ZADD NX, see groupready).
local ZREMS, ZADDS, RINGNX, RINGSEEN = {}, {}, {}, {}
local function defer(t, key, ...)
  local l = t[key]
  if not l then
    l = {}
    t[key] = l
  end
  for _, v in ipairs({...}) do l[#l + 1] = v end
end
local function zrem(key, member) defer(ZREMS, key, member) end
local function zadd(key, score, member) defer(ZADDS, key, score, member) end
-- variadic runs cmd on key with the list's elements, 1,000 at a time:
-- unpack of a longer list fails ("too many results to unpack", past Lua's
-- C stack) after the writes before it were made, which would leave a
-- batch half written. 1,000 is even, so ZADD's score-member pairs stay
-- whole.
local function variadic(cmd, key, l)
  for i = 1, #l, 1000 do redis.call(cmd, key, unpack(l, i, math.min(i + 999, #l))) end
end
local function flushz()
  for key, l in pairs(ZREMS) do variadic('ZREM', key, l) end
  for key, l in pairs(ZADDS) do variadic('ZADD', key, l) end
  for key, l in pairs(RINGNX) do
    for i = 1, #l, 1000 do redis.call('ZADD', key, 'NX', unpack(l, i, math.min(i + 999, #l))) end
  end
  ZREMS, ZADDS, RINGNX, RINGSEEN = {}, {}, {}, {}
end

local function move(id, from, to, seq)
  if from and from ~= '' then zrem(sk(from), id) end
  zadd(sk(to), seq, id)
end

-- Group indexing costs only queues served fairly: FAIRQ caches, per base,
-- whether <base>:fair exists.
local FAIRQ = {}
local function fairq()
  local v = FAIRQ[base]
  if v == nil then
    v = redis.call('EXISTS', base .. ':fair') == 1
    FAIRQ[base] = v
  end
  return v
end
local function gk(g) return base .. ':gr:' .. g end
-- groupready files ready member rk (score = -priority) in its group's set,
-- and the group in the ring if it is new there (ZADD NX: its place kept).
local function groupready(g, score, rk)
  zadd(gk(g), score, rk)
  local k = RING .. '\n' .. g
  if not RINGSEEN[k] then
    RINGSEEN[k] = true
    defer(RINGNX, RING, 0, g)
  end
end

local function makeready(id, prio, runat, seq)
  if runat < 0 then runat = 0 end
  local rk = string.format('%013d:%016d:', runat, seq) .. id
  redis.call('ZADD', READY, -prio, rk)
  redis.call('HSET', jk(id), 'rk', rk)
  if fairq() then groupready(redis.call('HGET', jk(id), 'g') or '', -prio, rk) end
end

local function appenderr(id, line)
  local cur = redis.call('HGET', jk(id), 'e') or ''
  redis.call('HSET', jk(id), 'e', cur .. line .. '\n')
end

local function attempts(id)
  local cur = redis.call('HGET', jk(id), 'e') or ''
  local _, n = string.gsub(cur, '\n', '')
  return n
end

-- Slots (ReserveSlots, reserve.lua): a job leased under a concurrency rule
-- is a member of its rule's slot set for its key, "<slot prefix><name>\0
-- <key>" (a zset, member the job's hash key, score its lease expiry), and
-- names the set in its hash field sl until it stops running: its outcome,
-- its retry, or its lease's expiry (promote) takes it out. A set counts
-- its members whose lease has not expired; it lives as long as its
-- latest lease.
local function slot(id, set, le, now)
  redis.call('ZADD', set, le, jk(id))
  redis.call('HSET', jk(id), 'sl', set)
  if redis.call('PTTL', set) < le - now + 1000 then redis.call('PEXPIRE', set, le - now + 1000) end
end
-- unslot takes job id out of its slot set sl (its field), if any.
local function unslot(id, sl)
  if sl and sl ~= '' then
    redis.call('ZREM', sl, jk(id))
    redis.call('HDEL', jk(id), 'sl')
  end
end
-- poisoned tells whether a job read as READ has used its deliveries.
local function poisoned(f) return num(f[F.md]) > 0 and num(f[F.d]) >= num(f[F.md]) end
-- headerof returns header h of a job read as READ, '' when absent (or the
-- headers do not decode: the job then fails to decode in Go, and is set
-- aside there).
local function headerof(f, h)
  local ok, hs = pcall(cjson.decode, f[F.h] or '')
  if ok and type(hs) == 'table' and type(hs[h]) == 'string' then return hs[h] end
  return ''
end
-- holdback postpones ready job id, read as READ, to at: Scheduled, as a
-- snooze leaves it, using no delivery. Its ready entry is gone already.
local function holdback(id, f, at)
  move(id, f[1], 'scheduled', num(f[F.seq]))
  redis.call('HSET', jk(id), 's', 'scheduled', 'ra', at)
  zadd(LATER, at, id)
end

-- finish moves a job to a final state and files it for pruning after keep
-- ms (never when keep < 0), or after its unique window if that is later.
-- A result, when given and not empty, is stored in the same HSET.
local FINISHED = {}
local function finish(id, from, to, seq, now, keep, uu, result, sl)
  if result and result ~= '' then
    redis.call('HSET', jk(id), 's', to, 'fa', now, 'r', result)
  else
    redis.call('HSET', jk(id), 's', to, 'fa', now)
  end
  move(id, from, to, seq)
  if from == 'running' then
    zrem(LEASED, id)
    unslot(id, sl)
  end
  if keep >= 0 then
    local at = now + keep
    if uu > at then at = uu end
    zadd(FIN, at, id)
  end
  table.insert(FINISHED, id)
end

-- announce flushes the deferred writes, then publishes the finished jobs
-- (one message per script run) and, when avail is true, that jobs are due.
-- Every script that writes ends with it.
local function announce(avail)
  flushz()
  if #FINISHED > 0 then
    redis.call('PUBLISH', base .. ':fin', table.concat(FINISHED, '\n'))
    FINISHED = {}
  end
  if avail then redis.call('PUBLISH', base .. ':avail', '') end
end

-- unindex removes id from the state sets named (every one when states is
-- nil), from the ready set by its member rk, and from later, leased and fin.
local function unindex(id, rk, states)
  for _, st in ipairs(states or STATES) do redis.call('ZREM', sk(st), id) end
  if rk and rk ~= '' then redis.call('ZREM', READY, rk) end
  redis.call('ZREM', LATER, id)
  redis.call('ZREM', LEASED, id)
  redis.call('ZREM', FIN, id)
end

-- What the scripts met with no usable job hash behind it, for Go to log:
-- STRAYS are IDs whose hash is missing (or not a hash), now out of every
-- index; CORRUPT are IDs whose hash names an unknown state, now dead.
local STRAYS, CORRUPT = {}, {}

-- usable tells whether f, a job's fields read with 's' first, name a known
-- state. If not, the job can never leave the sets that hold its ID, so they
-- would count it forever (depth, QueueStats): a missing hash has its ID
-- taken out of every index; a hash with an unknown state or none is
-- dead-lettered, with the reason, for an operator to see. Only this bad
-- path costs more than the table lookup.
local function usable(id, f, now, keep)
  if f and KNOWN[f[1]] then return true end
  if not f or (not f[1] and redis.call('EXISTS', jk(id)) == 0) then
    unindex(id)
    table.insert(STRAYS, id)
    return false
  end
  local g = fields(id, 'rk', 'seq', 'uu') or {}
  unindex(id, g[1])
  local why = 'corrupt job record: unknown state "' .. (f[1] or '') .. '"'
  appenderr(id, cjson.encode({n = attempts(id) + 1, at = now, err = why}))
  finish(id, nil, 'dead', num(g[2]), now, keep, num(g[3]))
  table.insert(CORRUPT, id)
  return false
end

-- promote makes due what became due: expired leases go back to pending (the
-- reaper; any client running any script may do it), scheduled and retrying
-- jobs whose time came join the ready set. Returns how many.
local function promote(now, limit, keep)
  local n = 0
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', LEASED, '-inf', now, 'LIMIT', 0, limit)) do
    redis.call('ZREM', LEASED, id)
    local f = fields(id, 's', 'pr', 'ra', 'seq', 'sl')
    if f and f[1] == 'running' then
      move(id, 'running', 'pending', num(f[4]))
      redis.call('HSET', jk(id), 's', 'pending')
      unslot(id, f[5])
      makeready(id, num(f[2]), num(f[3]), num(f[4]))
      n = n + 1
    else
      usable(id, f, now, keep) -- a stale entry of a job in another state is just dropped
    end
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', LATER, '-inf', now, 'LIMIT', 0, limit)) do
    redis.call('ZREM', LATER, id)
    local f = fields(id, 's', 'pr', 'ra', 'seq')
    if usable(id, f, now, keep) and f[1] ~= 'running' and not finished(f[1]) then
      makeready(id, num(f[2]), num(f[3]), num(f[4]))
      n = n + 1
    end
  end
  flushz()
  return n
end

-- remove deletes a job and every index entry pointing at it. A state that
-- is not known (a corrupt or missing hash) says nothing about which state
-- set holds the ID, so then every one is cleared.
local function remove(id, state, rk, ukey)
  unindex(id, rk, KNOWN[state] and {state} or nil)
  if ukey and ukey ~= '' and redis.call('HGET', base .. ':uniq', ukey) == id then
    redis.call('HDEL', base .. ':uniq', ukey)
  end
  redis.call('DEL', jk(id))
end

local function depth()
  return redis.call('ZCARD', sk('pending')) + redis.call('ZCARD', sk('scheduled'))
    + redis.call('ZCARD', sk('running')) + redis.call('ZCARD', sk('retrying'))
end

-- leasable reads the job a ready-set member m names and returns its ID
-- and fields (read as READ) if it can be leased now; nil for a member too
-- short to name a job (a stray, reported), one whose hash is missing or
-- corrupt (handled by usable), or a stale one (the job has another
-- member, or is running or finished). The caller takes m out of its set.
local function leasable(m, now, keep)
  local id = string.sub(m, 32)
  if id == '' then
    table.insert(STRAYS, m)
    return nil
  end
  local f = fields(id, unpack(READ))
  if usable(id, f, now, keep) and f[RK] == m and f[1] ~= 'running' and not finished(f[1]) then
    return id, f
  end
  return nil
end

-- leaseready leases ready job id, whose fields f were read as READ, for
-- reserve.lua and reserve_fair.lua (ARGV: now, limit, lease ms, worker,
-- token prefix, keep-dead ms, poison reason format), after its ready
-- entries are gone: the n-th lease of the call goes into out, or a job
-- past its deliveries is dead-lettered. Returns n, counting this lease.
local function leaseready(id, f, now, n, out)
  local d, md, seq = num(f[F.d]), num(f[F.md]), num(f[F.seq])
  if md > 0 and d >= md then
    appenderr(id, cjson.encode({n = attempts(id) + 1, at = now, err = string.format(ARGV[7], d)}))
    finish(id, f[1], 'dead', seq, now, tonumber(ARGV[6]), num(f[F.uu]))
    return n
  end
  n = n + 1
  local le, tk = now + tonumber(ARGV[3]), ARGV[5] .. n
  redis.call('HSET', jk(id), 's', 'running', 'd', d + 1, 'sa', now, 'tk', tk, 'le', le, 'w', ARGV[4])
  if f[F.c] then redis.call('HDEL', jk(id), 'c') end
  move(id, f[1], 'running', seq)
  zadd(LEASED, le, id)
  f[RK] = nil
  table.insert(out, id)
  table.insert(out, tk)
  table.insert(out, f)
  return n
end

-- rulesat reads ReserveSlots's arguments from ARGV[i] on: the slot sets'
-- key prefix, the key's header, then per rule its task, name, limit and
-- backoff ms. Returns the rules by task (none: an empty table) and the
-- header.
local function rulesat(i)
  local rules = {}
  for j = i + 2, #ARGV, 4 do
    rules[ARGV[j]] = {set = ARGV[i] .. ARGV[j + 1] .. '\0', limit = tonumber(ARGV[j + 2]), backoff = tonumber(ARGV[j + 3])}
  end
  return rules, ARGV[i + 1]
end

-- admit leases ready job id, read as READ, as leaseready does, unless a
-- rule of its task holds it back: its key's slot set has the rule's limit
-- of live slots. A job held back is postponed by the rule's backoff and
-- appended to held with a 0 where heldrecords puts its record.
local function admit(id, f, now, n, out, rules, header, held)
  local r = rules[f[F.t]]
  if not r or poisoned(f) then return leaseready(id, f, now, n, out) end
  local set = r.set .. headerof(f, header)
  if redis.call('ZCOUNT', set, '(' .. now, '+inf') < r.limit then
    n = leaseready(id, f, now, n, out)
    slot(id, set, now + tonumber(ARGV[3]), now)
    return n
  end
  holdback(id, f, now + r.backoff)
  table.insert(held, id)
  table.insert(held, 0)
  return n
end

-- heldrecords reads the records of the jobs admit held back, once every
-- write is flushed.
local function heldrecords(held)
  for i = 1, #held, 2 do held[i + 1] = record(held[i]) end
  return held
end
