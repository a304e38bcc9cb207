-- disconnect: every node detaches its sessions of a user (the server API
-- disconnected it): a 'x' message on the user's channel, which the nodes
-- with sessions of the user subscribe to.
-- KEYS: 1 sessions set, 2 the user's channel
-- ARGV: 1 now (ms), 2 the payload
-- Returns the user's live sessions.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n > 0 then
  redis.call('SPUBLISH', KEYS[2], ARGV[2])
end
return n
