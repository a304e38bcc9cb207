-- dm_sender: the copy of a private message for the sender's other
-- sessions, published on the sender's channel if it has any; with DM
-- history, the recipient's entry in the sender's list of conversations.
-- KEYS: 1 sessions set, 2 the user's channel, 3 the user's conversations
--       (hash: peer's key → GEN|EPOCH|TOP|TS|PEER)
-- ARGV: 1 now (ms), 2 the payload, 3 '1' when the sending session is one
--       of them (it does not get the copy), '0' when none is (the server
--       API sent it), 4 the entry's field (the peer's key; '': none), 5
--       its value, 6 the list's time to live (ms), 7 the most entries
-- Returns the sender's live sessions (the sending one included).
-- include: conv_list
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n > tonumber(ARGV[3]) then
  redis.call('SPUBLISH', KEYS[2], ARGV[2])
end
if ARGV[4] and ARGV[4] ~= '' then
  put(KEYS[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
end
return n
