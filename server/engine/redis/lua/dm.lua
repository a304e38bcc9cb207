-- dm: a private message to a user: refused if the user has no session (or
-- is only reserved) or receives beyond its rate (a GCRA bucket in the
-- user's hash); else given the user's next DM id and published on the
-- user's channel.
-- KEYS: 1 user hash, 2 sessions set, 3 the user's channel
-- ARGV: 1 now (ms), 2 the interval between messages at the rate (ms),
--       3 the burst, 4 the rest of the payload
-- Returns {'none'} | {'reserved', name} | {'busy', name} |
-- {'ok', id, live sessions, name, colour}.
local function lp(s) s = tostring(s) return #s .. ':' .. s end
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local u = redis.call('HMGET', KEYS[1], 'name', 'color', 'token', 'tat')
if not u[3] then
  return {'none'}
end
local n = redis.call('ZCARD', KEYS[2])
if n == 0 then
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
local id = redis.call('HINCRBY', KEYS[1], 'dmid', 1)
redis.call('SPUBLISH', KEYS[3], 'd' .. lp(id) .. lp(u[1]) .. ARGV[4])
return {'ok', id, n, u[1], u[2]}
