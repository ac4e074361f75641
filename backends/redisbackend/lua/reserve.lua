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
local rules = {}
for i = 10, #ARGV, 4 do
  rules[ARGV[i]] = {set = ARGV[8] .. ARGV[i + 1] .. '\0', limit = tonumber(ARGV[i + 2]), backoff = tonumber(ARGV[i + 3])}
end
local out, held, n, h = {}, {}, 0, 0 -- h: jobs held back
while n + h < limit do
  local members = redis.call('ZRANGE', READY, 0, limit - n - h - 1)
  if #members == 0 then break end
  variadic('ZREM', READY, members)
  for _, m in ipairs(members) do
    local id, f = leasable(m, now, keep)
    local r = id and rules[f[F.t]]
    if r and not poisoned(f) then
      local set = r.set .. headerof(f, ARGV[9])
      if redis.call('ZCOUNT', set, '(' .. now, '+inf') < r.limit then
        n = leaseready(id, f, now, n, out)
        slot(id, set, now + tonumber(ARGV[3]), now)
      else
        holdback(id, f, now + r.backoff)
        h = h + 1
        table.insert(held, id)
        table.insert(held, 0) -- its record, read once the writes are flushed
      end
    elseif id then
      n = leaseready(id, f, now, n, out)
    end
  end
end
announce(false)
for i = 1, #held, 2 do held[i + 1] = record(held[i]) end
return {out, STRAYS, CORRUPT, held}
