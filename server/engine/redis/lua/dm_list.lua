-- dm_list: a user's list of conversations, as its generation sees it:
-- the entries of that generation newer than the cutoff (older ones are
-- deleted).
-- KEYS: 1 the user's conversations (hash: peer's key → GEN|EPOCH|TOP|TS|PEER)
-- ARGV: 1 the generation, 2 the cutoff (ms)
-- Returns the entries' values.
local all = redis.call('HGETALL', KEYS[1])
local out = {}
local cutoff = tonumber(ARGV[2])
local prefix = ARGV[1] .. '|'
for i = 1, #all, 2 do
  local v = all[i + 1]
  local ts = tonumber(string.match(v, '^[^|]*|[^|]*|%d+|(%d+)|'))
  if not ts or ts < cutoff then
    redis.call('HDEL', KEYS[1], all[i])
  elseif string.sub(v, 1, #prefix) == prefix then
    table.insert(out, v)
  end
end
return out
