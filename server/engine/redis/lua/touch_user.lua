-- touch_user: a node keeps its sessions of a user alive (and the user, if
-- Redis lost it meanwhile).
-- KEYS: 1 user hash, 2 sessions set
-- ARGV: 1 name, 2 colour, 3 token, 4 the sessions' expiry (ms), 5 the
--       keys' time to live (ms), 6 verified ('1' or ''), 7… this node's
--       session members
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'name', ARGV[1], 'color', ARGV[2], 'token', ARGV[3])
  if ARGV[6] == '1' then
    redis.call('HSET', KEYS[1], 'v', '1')
  end
end
for i = 7, #ARGV do
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
