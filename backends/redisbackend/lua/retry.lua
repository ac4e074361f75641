-- ARGV: now, id, token, at ms, error line ('' for a snooze), keep-dead ms,
-- dead (1: dead-letter instead of retrying).
-- Returns 1, or 0 when the lease is lost.
local now, id, at = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[4])
local f = fields(id, 's', 'tk', 'seq', 'pr', 'd', 'uu', 'sl')
if not (f and f[1] == 'running' and f[2] == ARGV[3]) then return 0 end
local seq = num(f[3])
if ARGV[5] ~= '' then appenderr(id, ARGV[5]) end
if ARGV[7] == '1' then
  finish(id, 'running', 'dead', seq, now, tonumber(ARGV[6]), num(f[6]), nil, f[7])
  announce(false)
  return 1
end
zrem(LEASED, id)
unslot(id, f[7])
local state = 'retrying'
if ARGV[5] == '' then
  state = 'scheduled'
  redis.call('HSET', jk(id), 'd', num(f[5]) - 1)
end
if at <= now then state = 'pending' end
move(id, 'running', state, seq)
redis.call('HSET', jk(id), 's', state, 'ra', at)
if state == 'pending' then
  makeready(id, num(f[4]), at, seq)
  announce(true)
else
  zadd(LATER, at, id)
  announce(false)
end
return 1
