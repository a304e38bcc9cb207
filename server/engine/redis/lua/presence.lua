-- presence: a user present in a room on a node, or no longer; the change
-- is published on the room's channel.
-- KEYS: 1 presence set, 2 the room's channel
-- ARGV: 1 '1' present, '' gone, 2 member (NODE|NAME|COLOUR), 3 its expiry
--       (ms), 4 the set's time to live (ms), 5 the payload to publish
if ARGV[1] == '1' then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('ZREM', KEYS[1], ARGV[2])
end
redis.call('SPUBLISH', KEYS[2], ARGV[5])
return 1
