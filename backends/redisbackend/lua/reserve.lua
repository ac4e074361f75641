-- ARGV: now, limit, lease ms, worker, token prefix, keep-dead ms, poison
-- reason format (one %d: the delivery count).
-- Returns {{id, token, record as it was before this reserve}..., STRAYS,
-- CORRUPT} (see usable in the prelude; a ready entry too short to name a
-- job is a stray as it is).
local now, limit, lease, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[6])
if redis.call('EXISTS', base .. ':paused') == 1 then return {{}, {}, {}} end
promote(now, 1000, keep)
local out, n = {}, 0
while #out < limit do
  local members = redis.call('ZRANGE', READY, 0, limit - #out - 1)
  if #members == 0 then break end
  variadic('ZREM', READY, members)
  for _, m in ipairs(members) do
    local id = string.sub(m, 32)
    -- One read for the checks and the reply: record fields, then rk.
    local f = fields(id, unpack(READ))
    if id == '' then
      table.insert(STRAYS, m)
    elseif not usable(id, f, now, keep) then
      -- cleared or dead-lettered, to be reported
    elseif f[RK] == m and f[1] ~= 'running' and not finished(f[1]) then
      local d, md, seq = num(f[F.d]), num(f[F.md]), num(f[F.seq])
      if md > 0 and d >= md then
        appenderr(id, cjson.encode({n = attempts(id) + 1, at = now, err = string.format(ARGV[7], d)}))
        finish(id, f[1], 'dead', seq, now, keep, num(f[F.uu]))
      else
        n = n + 1
        local le, tk = now + lease, ARGV[5] .. n
        redis.call('HSET', jk(id), 's', 'running', 'd', d + 1, 'sa', now, 'tk', tk, 'le', le, 'w', ARGV[4])
        if f[F.c] then redis.call('HDEL', jk(id), 'c') end
        move(id, f[1], 'running', seq)
        zadd(LEASED, le, id)
        f[RK] = nil
        table.insert(out, id)
        table.insert(out, tk)
        table.insert(out, f)
      end
    end
  end
end
announce(false)
return {out, STRAYS, CORRUPT}
