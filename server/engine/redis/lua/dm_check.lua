-- dm_check: may a private message go to this user now (DM history: the
-- message is then appended to its conversation, dm_append, and delivered,
-- dm_deliver)? Refused if the user has no session (or is only reserved)
-- or receives beyond its rate: the GCRA bucket of dm.lua, of which this
-- takes a token.
-- KEYS: 1 user hash, 2 sessions set
-- ARGV: 1 now (ms), 2 the interval between messages at the rate (ms),
--       3 the burst
-- Returns {'none'} | {'reserved', name} | {'busy', name} |
-- {'ok', name, colour, token, verified ('1' or '')}.
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local u = redis.call('HMGET', KEYS[1], 'name', 'color', 'token', 'tat', 'v')
if not u[3] then
  return {'none'}
end
if redis.call('ZCARD', KEYS[2]) == 0 then
  return {'reserved', u[1]}
end
local interval = tonumber(ARGV[2])
local tat = tonumber(u[4]) or now
if tat < now then
  tat = now
end
local next = tat + interval
if next - now > tonumber(ARGV[3]) * interval + 0.001 then
  return {'busy', u[1]}
end
redis.call('HSET', KEYS[1], 'tat', tostring(next))
return {'ok', u[1], u[2], u[3], u[5] or ''}
