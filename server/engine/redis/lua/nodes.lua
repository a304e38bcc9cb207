-- nodes: a node's heartbeat (or its goodbye) and the live nodes.
-- KEYS: 1 nodes set (score: expiry, ms), 2 nodes' info hash
-- ARGV: 1 now (ms), 2 this node's expiry (ms), 3 node id, 4 its info
--       (CONNS|ADVERTISE), '' to deregister
-- Returns {ids, infos}.
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
  redis.call('HDEL', KEYS[2], unpack(dead))
end
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
else
  redis.call('ZREM', KEYS[1], ARGV[3])
  redis.call('HDEL', KEYS[2], ARGV[3])
end
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local infos = {}
if #ids > 0 then
  infos = redis.call('HMGET', KEYS[2], unpack(ids))
end
for i = 1, #infos do
  if not infos[i] then infos[i] = '' end
end
return {ids, infos}
