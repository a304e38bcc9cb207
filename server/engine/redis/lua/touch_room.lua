-- touch_room: a node that has the room open keeps its keys alive and its
-- presence entries from expiring.
-- KEYS: 1 meta hash, 2 stream, 3 cid hash, 4 presence set
-- ARGV: 1 the keys' time to live (ms), 2 now (ms), 3 the presence
--       entries' expiry (ms), 4… this node's presence members
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[2])
for i = 4, #ARGV do
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[i])
end
if #ARGV >= 4 then
  redis.call('PEXPIRE', KEYS[4], ARGV[1])
end
return 1
