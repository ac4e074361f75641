-- Operator actions on one queue. ARGV: now, action, then:
--   replay: (id, has payload 0/1, payload) triples; dead and cancelled jobs
--           go back to pending with a fresh delivery count.
--   delete: ids; every job not running is deleted.
--   purge:  limit, states; deletes up to limit jobs in those states.
--   pause / resume: nothing.
-- Returns how many jobs changed.
local now, action = tonumber(ARGV[1]), ARGV[2]
local n = 0
if action == 'replay' then
  for i = 3, #ARGV, 3 do
    local id = ARGV[i]
    local f = fields(id, 's', 'pr', 'seq')
    if f and (f[1] == 'dead' or f[1] == 'cancelled') then
      redis.call('ZREM', FIN, id)
      move(id, f[1], 'pending', num(f[3]))
      redis.call('HSET', jk(id), 's', 'pending', 'd', 0, 'ra', now, 'fa', '')
      if ARGV[i + 1] == '1' then redis.call('HSET', jk(id), 'p', ARGV[i + 2]) end
      makeready(id, num(f[2]), now, num(f[3]))
      n = n + 1
    end
  end
  announce(n > 0)
elseif action == 'delete' then
  for i = 3, #ARGV do
    local id = ARGV[i]
    local f = fields(id, 's', 'rk', 'uk')
    if f and f[1] and f[1] ~= 'running' then
      remove(id, f[1], f[2], f[3])
      n = n + 1
    end
  end
elseif action == 'purge' then
  local limit = tonumber(ARGV[3])
  for i = 4, #ARGV do
    if ARGV[i] ~= 'running' and n < limit then
      for _, id in ipairs(redis.call('ZRANGE', sk(ARGV[i]), 0, limit - n - 1)) do
        local f = fields(id, 'rk', 'uk') or {}
        remove(id, ARGV[i], f[1], f[2])
        n = n + 1
      end
    end
  end
elseif action == 'pause' then
  redis.call('SET', base .. ':paused', '1')
elseif action == 'resume' then
  redis.call('DEL', base .. ':paused')
  announce(true)
end
return n
