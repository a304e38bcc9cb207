-- sessions: a user's live sessions on every node.
-- KEYS: 1 sessions set
-- ARGV: 1 now (ms)
-- Returns the members NODE|CONN|SINCE_MS|SID.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
