-- The KVStore, without the queue prelude. KEYS[1] is "<prefix>:{kv}": every
-- key lives under that hash tag, so one cluster slot holds them all.
-- A key is a hash (v version, x expiry ms or 0, val value); the sorted set
-- "<base>:index" lists the key names for prefix listing. A deleted or
-- expired key keeps its version, so versions only grow.
-- ARGV: action, key, then
--   put:    value, if-version, expires ms, now ms -> new version, or -1
--   get:    now ms -> {version, expires, value} or {}
--   delete: if-version -> 1, or 0 when the version differs
--   list:   (key is the prefix) now ms -> {key, version, expires, value}...
--   getmany: (key is now ms) key... -> {version, expires, value}... with
--            version 0 for a key absent or expired
--   putmany: (no key) {key, value, if-version, expires ms, now ms}... ->
--            {new version or 0}...
local base, action, key = KEYS[1], ARGV[1], ARGV[2]
local function live(h, now)
  local v, x = tonumber(h[1]) or 0, tonumber(h[2]) or 0
  return v > 0 and (x == 0 or x > now)
end
-- put writes k if its live version is ifv; the new version, or -1.
local function put(k, val, ifv, exp, now)
  local h = redis.call('HMGET', base .. ':' .. k, 'v', 'x')
  local have = 0
  if live(h, now) then have = tonumber(h[1]) end
  if have ~= ifv then return -1 end
  local v = (tonumber(h[1]) or 0) + 1
  redis.call('HSET', base .. ':' .. k, 'v', v, 'x', exp, 'val', val)
  redis.call('ZADD', base .. ':index', 0, k)
  return v
end
if action == 'put' then
  return put(key, ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]))
elseif action == 'putmany' then
  local out = {}
  for i = 2, #ARGV, 5 do
    table.insert(out, math.max(put(ARGV[i], ARGV[i+1], tonumber(ARGV[i+2]), ARGV[i+3], tonumber(ARGV[i+4])), 0))
  end
  return out
elseif action == 'getmany' then
  local now, out = tonumber(key), {}
  for i = 3, #ARGV do
    local h = redis.call('HMGET', base .. ':' .. ARGV[i], 'v', 'x', 'val')
    if live(h, now) then
      table.insert(out, h[1]); table.insert(out, h[2]); table.insert(out, h[3])
    else
      table.insert(out, 0); table.insert(out, 0); table.insert(out, '')
    end
  end
  return out
elseif action == 'get' then
  local h = redis.call('HMGET', base .. ':' .. key, 'v', 'x', 'val')
  if not live(h, tonumber(ARGV[3])) then return {} end
  return h
elseif action == 'delete' then
  local h = redis.call('HMGET', base .. ':' .. key, 'v', 'x')
  local want = tonumber(ARGV[3])
  if want ~= 0 and not (live(h, tonumber(ARGV[4])) and tonumber(h[1]) == want) then return 0 end
  if h[1] then redis.call('HSET', base .. ':' .. key, 'x', 1, 'val', '') end
  return 1
end
-- list: the index is ordered by name; range from the prefix on.
local out = {}
local now = tonumber(ARGV[3])
for _, k in ipairs(redis.call('ZRANGE', base .. ':index', '[' .. key, '+', 'BYLEX')) do
  if string.sub(k, 1, #key) ~= key then break end
  local h = redis.call('HMGET', base .. ':' .. k, 'v', 'x', 'val')
  if live(h, now) then
    table.insert(out, k)
    table.insert(out, h[1])
    table.insert(out, h[2])
    table.insert(out, h[3])
  end
end
return out
