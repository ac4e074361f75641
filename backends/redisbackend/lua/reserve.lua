-- ARGV: now, limit, lease ms, worker, token prefix, keep-dead ms, poison
-- reason format (one %d: the delivery count); for ReserveSlots also the
-- slot sets' key prefix, the key's header, then per rule: task, name,
-- limit, backoff ms.
-- Returns {{id, token, record as it was before this reserve}..., STRAYS,
-- CORRUPT, {id, record now}... of the jobs held back} (see usable in the
-- prelude; a ready entry too short to name a job is a stray as it is).
local now, limit, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[6])
if redis.call('EXISTS', base .. ':paused') == 1 then return {{}, {}, {}, {}} end
promote(now, 1000, keep)
local rules, header = rulesat(8)
local out, held, n = {}, {}, 0
while n + #held / 2 < limit do
  local members = redis.call('ZRANGE', READY, 0, limit - n - #held / 2 - 1)
  if #members == 0 then break end
  variadic('ZREM', READY, members)
  for _, m in ipairs(members) do
    local id, f = leasable(m, now, keep)
    if id then n = admit(id, f, now, n, out, rules, header, held) end
  end
end
announce(false)
return {out, STRAYS, CORRUPT, heldrecords(held)}
