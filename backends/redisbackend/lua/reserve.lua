-- ARGV: now, limit, lease ms, worker, token prefix, keep-dead ms, poison
-- reason format (one %d: the delivery count).
-- Returns {{id, token, record as it was before this reserve}..., STRAYS,
-- CORRUPT} (see usable in the prelude; a ready entry too short to name a
-- job is a stray as it is).
local now, limit, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[6])
if redis.call('EXISTS', base .. ':paused') == 1 then return {{}, {}, {}} end
promote(now, 1000, keep)
local out, n = {}, 0
while n < limit do
  local members = redis.call('ZRANGE', READY, 0, limit - n - 1)
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
      n = leaseready(id, f, now, n, out)
    end
  end
end
announce(false)
return {out, STRAYS, CORRUPT}
