-- ARGV: now, lease ms, then (id, token) pairs.
-- Returns per pair: new expiry ms (-1: lease lost), cancel requested 0/1.
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local f = fields(id, 's', 'tk', 'le', 'c', 'sl')
  if f and f[1] == 'running' and f[2] == ARGV[i + 1] and num(f[3]) > now then
    local le = now + lease
    redis.call('HSET', jk(id), 'le', le)
    redis.call('ZADD', LEASED, le, id)
    if f[5] then slot(id, f[5], le, now) end
    table.insert(out, le)
    table.insert(out, f[4] == '1' and 1 or 0)
  else
    table.insert(out, -1)
    table.insert(out, 0)
  end
end
return out
