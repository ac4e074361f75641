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
  -- A member whose hash names another state is drift, not a job in this
  -- state: it leaves the set and its job stays (it may be running). seen
  -- bounds the run when the set holds many such members.
  local limit, seen = tonumber(ARGV[3]), 0
  for i = 4, #ARGV do
    local st = ARGV[i]
    while st ~= 'running' and n < limit and seen < 2 * limit do
      local ids = redis.call('ZRANGE', sk(st), 0, limit - n - 1)
      if #ids == 0 then break end
      for _, id in ipairs(ids) do
        seen = seen + 1
        local f = fields(id, 's', 'rk', 'uk') or {}
        if KNOWN[f[1]] and f[1] ~= st then
          redis.call('ZREM', sk(st), id)
        else
          remove(id, f[1], f[2], f[3])
          n = n + 1
        end
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
