-- dm_check: may a private message go to this user now (DM history: the
-- message is then appended to its conversation, dm_append, and delivered,
-- dm_deliver)? Refused if the user has no session (or is only reserved)
-- or receives beyond its rate: the bucket of dm.lua (lib/dm_gate.lua), of
-- which this takes a token.
-- KEYS: 1 user hash, 2 sessions set
-- ARGV: 1 now (ms), 2 the interval between messages at the rate (ms),
--       3 the burst
-- Returns {'none'} | {'reserved', name} | {'busy', name} |
-- {'ok', name, colour, token, verified ('1' or '')}.
-- include: dm_gate
local refused, u = gate(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if refused then
  return refused
end
return {'ok', u[1], u[2], u[3], u[5] or ''}
