-- Housekeeping for one queue, run by any client every few seconds under a
-- cluster-wide lock: recover expired leases, promote due jobs, prune
-- finished jobs past their retention. ARGV: now, limit.
-- Returns {made due, pruned}.
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = promote(now, limit)
local pruned = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', FIN, '-inf', now, 'LIMIT', 0, limit)) do
  local f = fields(id, 's', 'rk', 'uk') or {}
  if f[1] and not finished(f[1]) then
    redis.call('ZREM', FIN, id) -- replayed since; not ours to prune
  else
    remove(id, f[1], f[2], f[3])
    pruned = pruned + 1
  end
end
announce(due > 0)
return {due, pruned}
