-- who: the users present in a room, for a node that has not opened it.
-- KEYS: 1 meta hash, 2 presence set
-- ARGV: 1 now (ms)
-- Returns {'none'} | {'ok', members}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'none'}
end
return {'ok', redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], '+inf')}
