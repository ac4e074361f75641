-- ARGV: now, id, token ('' when the caller holds no lease), keep-done ms.
-- Returns {outcome, state}: outcome is ok, notfound, finished or lost.
local now, id = tonumber(ARGV[1]), ARGV[2]
local f = fields(id, 's', 'tk', 'seq', 'rk', 'uu', 'sl')
if not f or not f[1] then return {'notfound', ''} end
local s = f[1]
if finished(s) then return {'finished', s} end
if not KNOWN[s] then
  unindex(id, f[4]) -- a corrupt state names no set to leave: leave them all
  s = ''
end
if s == 'running' then
  if ARGV[3] == '' then
    redis.call('HSET', jk(id), 'c', '1')
    return {'ok', 'running'}
  end
  if f[2] ~= ARGV[3] then return {'lost', s} end
else
  if f[4] and f[4] ~= '' then redis.call('ZREM', READY, f[4]) end
  redis.call('ZREM', LATER, id)
end
finish(id, s, 'cancelled', num(f[3]), now, tonumber(ARGV[4]), num(f[5]), nil, f[6])
announce(false)
return {'ok', 'cancelled'}
