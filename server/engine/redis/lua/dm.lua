-- dm: a private message to a user: refused if the user has no session (or
-- is only reserved) or receives beyond its rate (lib/dm_gate.lua); else
-- given the user's next DM id and published on the user's channel.
-- KEYS: 1 user hash, 2 sessions set, 3 the user's channel
-- ARGV: 1 now (ms), 2 the interval between messages at the rate (ms),
--       3 the burst, 4 the rest of the payload
-- Returns {'none'} | {'reserved', name} | {'busy', name} |
-- {'ok', id, live sessions, name, colour}.
local function lp(s) s = tostring(s) return #s .. ':' .. s end
-- include: dm_gate
local refused, u, n = gate(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if refused then
  return refused
end
local id = redis.call('HINCRBY', KEYS[1], 'dmid', 1)
redis.call('SPUBLISH', KEYS[3], 'd' .. lp(id) .. lp(u[1]) .. ARGV[4])
return {'ok', id, n, u[1], u[2]}
