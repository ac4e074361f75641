-- KEYS: one base per queue in the batch (all in one slot unless the batch has
-- a single queue). ARGV: now, then per queue (name, max depth), then per job
-- 13 fields: id, queue index, task, payload, priority, run_at, max
-- deliveries, timeout, retry policy, headers, unique key, unique until,
-- group.
-- Returns {'full', queue, depth, adding, bound} or {'ok', (id, state, dup)...}.
local now = tonumber(ARGV[1])
local nq = #KEYS
local first = 2 + 2 * nq
local F = 13
local njobs = (#ARGV - first + 1) / F

local function holder(ukey)
  local id = redis.call('HGET', base .. ':uniq', ukey)
  if not id then return nil end
  local f = fields(id, 's', 'uu')
  if not f or not f[1] then return nil end
  local uu = num(f[2])
  if uu > 0 then
    if now < uu then return id end
    return nil
  end
  if finished(f[1]) then return nil end
  return id
end

local dup, adding, inbatch = {}, {}, {}
for i = 0, njobs - 1 do
  local o = first + i * F
  local id, qi, ukey = ARGV[o], tonumber(ARGV[o + 1]), ARGV[o + 10]
  use(KEYS[qi])
  local d = inbatch['id:' .. id]
  if not d and redis.call('EXISTS', jk(id)) == 1 then d = id end
  if not d and ukey ~= '' then d = inbatch[qi .. ':' .. ukey] or holder(ukey) end
  if d then
    dup[i] = d
  else
    inbatch['id:' .. id] = id
    if ukey ~= '' then inbatch[qi .. ':' .. ukey] = id end
    adding[qi] = (adding[qi] or 0) + 1
  end
end

for qi = 1, nq do
  local bound = tonumber(ARGV[1 + 2 * qi])
  if bound > 0 and adding[qi] then
    use(KEYS[qi])
    local d = depth()
    if d + adding[qi] > bound then return {'full', ARGV[2 * qi], d, adding[qi], bound} end
  end
end

local out, avail = {'ok'}, {}
for i = 0, njobs - 1 do
  local o = first + i * F
  local id, qi = ARGV[o], tonumber(ARGV[o + 1])
  use(KEYS[qi])
  if dup[i] then
    table.insert(out, dup[i])
    table.insert(out, redis.call('HGET', jk(dup[i]), 's') or '')
    table.insert(out, 1)
  else
    local prio, runat = num(ARGV[o + 4]), num(ARGV[o + 5])
    if runat <= 0 then runat = now end
    local state = 'pending'
    if runat > now then state = 'scheduled' end
    local seq = redis.call('INCR', base .. ':seq')
    -- Empty optional fields are left out: every field costs on each write.
    local h = {'s', state, 't', ARGV[o + 2], 'p', ARGV[o + 3], 'pr', prio, 'ra', runat, 'ca', now,
      'md', ARGV[o + 6], 'seq', seq}
    for _, opt in ipairs({{'to', 7}, {'rp', 8}, {'h', 9}, {'uk', 10}, {'uu', 11}, {'g', 12}}) do
      local v = ARGV[o + opt[2]]
      if v ~= '' and v ~= '0' then
        table.insert(h, opt[1])
        table.insert(h, v)
      end
    end
    zadd(sk(state), seq, id)
    if state == 'pending' then
      -- makeready's two writes, folded into the job's HSET below and the
      -- deferred ZADDs.
      local rk = string.format('%013d:%016d:', runat, seq) .. id
      table.insert(h, 'rk')
      table.insert(h, rk)
      zadd(READY, -prio, rk)
      if fairq() then groupready(ARGV[o + 12], -prio, rk) end
      avail[qi] = true
    else
      zadd(LATER, runat, id)
    end
    redis.call('HSET', jk(id), unpack(h))
    if ARGV[o + 10] ~= '' then redis.call('HSET', base .. ':uniq', ARGV[o + 10], id) end
    table.insert(out, id)
    table.insert(out, state)
    table.insert(out, 0)
  end
end
flushz()
for qi in pairs(avail) do
  redis.call('PUBLISH', KEYS[qi] .. ':avail', '')
end
return out
