-- dm_sender: the copy of a private message for the sender's other
-- sessions, published on the sender's channel if it has any.
-- KEYS: 1 sessions set, 2 the user's channel
-- ARGV: 1 now (ms), 2 the payload, 3 '1' when the sending session is one
--       of them (it does not get the copy), '0' when none is (the server
--       API sent it)
-- Returns the sender's live sessions (the sending one included).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n > tonumber(ARGV[3]) then
  redis.call('SPUBLISH', KEYS[2], ARGV[2])
end
return n
