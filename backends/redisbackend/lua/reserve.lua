-- ARGV: now, limit, lease ms, worker, token prefix, keep-dead ms, poison
-- reason format (one %d: the delivery count).
-- Returns {{id, record}..., malformed ready entries dropped}.
local now, limit, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', base .. ':paused') == 1 then return {{}, {}} end
promote(now, 1000)
local out, bad, n = {}, {}, 0
while #out < limit do
  local members = redis.call('ZRANGE', READY, 0, limit - #out - 1)
  if #members == 0 then break end
  redis.call('ZREM', READY, unpack(members))
  for _, m in ipairs(members) do
    local id = string.sub(m, 32)
    local f = fields(id, 's', 'd', 'md', 'seq', 'rk', 'uu', 'c')
    if not f or not f[1] then
      table.insert(bad, m)
    elseif f[5] == m and f[1] ~= 'running' and not finished(f[1]) then
      local d, md, seq = num(f[2]), num(f[3]), num(f[4])
      if md > 0 and d >= md then
        appenderr(id, cjson.encode({n = attempts(id) + 1, at = now, err = string.format(ARGV[7], d)}))
        finish(id, f[1], 'dead', seq, now, tonumber(ARGV[6]), num(f[6]))
      else
        n = n + 1
        local le = now + lease
        redis.call('HSET', jk(id), 's', 'running', 'd', d + 1, 'sa', now, 'tk', ARGV[5] .. n, 'le', le, 'w', ARGV[4])
        if f[7] then redis.call('HDEL', jk(id), 'c') end
        move(id, f[1], 'running', seq)
        redis.call('ZADD', LEASED, le, id)
        table.insert(out, id)
        table.insert(out, record(id))
      end
    end
  end
end
announce(false)
return {out, bad}
