-- release: a session of a user is gone. After the last one on every node,
-- the name stays reserved to its token for the grace period (the user's
-- hash expires then), or goes at once without a grace.
-- KEYS: 1 user hash, 2 sessions set
-- ARGV: 1 the session's member, 2 now (ms), 3 the name grace (ms)
-- Returns the user's live sessions left (-1: no such user).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
local n = redis.call('ZCARD', KEYS[2])
if n == 0 then
  if tonumber(ARGV[3]) > 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
  else
    redis.call('DEL', KEYS[1])
  end
end
return n
