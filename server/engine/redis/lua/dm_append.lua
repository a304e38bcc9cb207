-- dm_append: append a private message to the conversation of two users,
-- which gives it its offset. A conversation that is missing, or whose
-- sides are other generations of the users (another holder of a name), is
-- made (again) with a new epoch: its old messages go. Messages older than
-- the cutoff go first, the oldest beyond the bound with the append.
-- KEYS: 1 meta hash (epoch, top, ga, gb, ua, ub, ts), 2 stream
-- ARGV: 1 generation of side a, 2 of side b, 3 user a (as spelt),
--       4 user b, 5 a new epoch, 6 the most messages retained, 7 the
--       keys' time to live (ms), 8 the cutoff (ms), 9 ts (ms), 10 the
--       message (blob)
-- Returns {epoch, offset, made (1 or 0), trimmed, expired}.
-- include: dm_expire
local m = redis.call('HMGET', KEYS[1], 'epoch', 'ga', 'gb')
local epoch = m[1]
local made = 0
if not epoch or m[2] ~= ARGV[1] or m[3] ~= ARGV[2] then
  redis.call('DEL', KEYS[1], KEYS[2])
  epoch = ARGV[5]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0, 'ga', ARGV[1], 'gb', ARGV[2], 'ua', ARGV[3], 'ub', ARGV[4])
  made = 1
end
local expired = expire(KEYS[2], tonumber(ARGV[8]))
local top = redis.call('HINCRBY', KEYS[1], 'top', 1)
local max = tonumber(ARGV[6])
local trimmed = 0
local len = redis.call('XLEN', KEYS[2])
if len >= max then
  trimmed = len - max + 1
end
redis.call('XADD', KEYS[2], 'MAXLEN', max, '0-' .. top, 'd', ARGV[10])
redis.call('HSET', KEYS[1], 'ts', ARGV[9])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return {epoch, top, made, trimmed, expired}
