-- read: a room's epoch, top and retained messages, for a node that opens
-- the room, fills a gap or resynchronises.
-- KEYS: 1 meta hash, 2 stream, 3 cid hash, 4 presence set
-- ARGV: 1 '1' to make the room if it is missing, 2 a new epoch,
--       3 the keys' time to live (ms), 4 'last' (the newest messages) or
--       'after' (those after an offset), 5 how many at most, 6 the offset,
--       7 now (ms): with presence, the entries that have not expired
--       ('' for none)
-- Returns {'none'} | {'ok', epoch, top, first retained offset (0: none),
-- entries, presence members}.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  if ARGV[1] ~= '1' then
    return {'none'}
  end
  redis.call('DEL', KEYS[2], KEYS[3])
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
local top = tonumber(redis.call('HGET', KEYS[1], 'top')) or 0
local entries
if ARGV[4] == 'last' then
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[5])
else
  entries = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[6], '+', 'COUNT', ARGV[5])
end
local first = 0
local f = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #f > 0 then
  first = tonumber(string.sub(f[1][1], 3))
end
local present = {}
if ARGV[7] ~= '' then
  present = redis.call('ZRANGEBYSCORE', KEYS[4], ARGV[7], '+inf')
end
return {'ok', epoch, top, first, entries, present}
