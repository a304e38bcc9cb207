-- dm_deliver: a private message appended to its conversation (DM
-- history) goes to the recipient: the recipient's next DM id, the publish
-- on its channel, and its list of conversations (the sender's entry).
-- KEYS: 1 user hash, 2 sessions set, 3 the user's channel, 4 the user's
--       conversations (hash: peer's key → GEN|EPOCH|TOP|TS|PEER)
-- ARGV: 1 now (ms), 2 the rest of the payload, 3 the entry's field (the
--       peer's key), 4 its value, 5 the list's time to live (ms), 6 the
--       most entries listed
-- Returns {id (0: the user is gone), live sessions}.
local function lp(s) s = tostring(s) return #s .. ':' .. s end
-- include: conv_list
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local id, n = 0, 0
local name = redis.call('HGET', KEYS[1], 'name')
if name then
  id = redis.call('HINCRBY', KEYS[1], 'dmid', 1)
  n = redis.call('ZCARD', KEYS[2])
  redis.call('SPUBLISH', KEYS[3], 'd' .. lp(id) .. lp(name) .. ARGV[2])
end
if ARGV[3] ~= '' then
  put(KEYS[4], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
end
return {id, n}
