-- unreserve: end the reservation of a name early (a node holds too many):
-- the user's hash goes if it still has no session and the same token.
-- KEYS: 1 user hash, 2 sessions set
-- ARGV: 1 token, 2 now (ms)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[2]) == 0 and redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
