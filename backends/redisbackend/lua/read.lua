-- Read-only views of one queue. ARGV: action, then:
--   stats: nothing; returns {paused 0/1, count per state in ARGV order...}
--          with the states as ARGV[2..].
--   list:  state, after seq, limit; returns {seq, id, record} triples.
local action = ARGV[1]
if action == 'stats' then
  local out = {redis.call('EXISTS', base .. ':paused')}
  for i = 2, #ARGV do table.insert(out, redis.call('ZCARD', sk(ARGV[i]))) end
  return out
end
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', sk(ARGV[2]), '(' .. ARGV[3], '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[4]))) do
  table.insert(out, id)
end
local res = {}
for i = 1, #out, 2 do
  table.insert(res, out[i + 1])
  table.insert(res, out[i])
  table.insert(res, record(out[i]))
end
return res
