-- ARGV: now, keep-done ms, then (id, token, result) triples.
-- Returns per triple 1 (done) or 0 (lease lost).
local now, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local f = fields(id, 's', 'tk', 'seq', 'uu', 'sl')
  if f and f[1] == 'running' and f[2] == ARGV[i + 1] then
    finish(id, 'running', 'done', num(f[3]), now, keep, num(f[4]), ARGV[i + 2], f[5])
    table.insert(out, 1)
  else
    table.insert(out, 0)
  end
end
announce(false)
return out
