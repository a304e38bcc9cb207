-- dm_deliver: a private message appended to its conversation (DM
-- history) goes to the recipient: the recipient's next DM id, the publish
-- on its channel, and its list of conversations (the sender's entry).
-- KEYS: 1 user hash, 2 sessions set, 3 the user's channel, 4 the user's
--       conversations (hash: peer's key → GEN|EPOCH|TOP|TS|PEER)
-- ARGV: 1 now (ms), 2 the rest of the payload, 3 the entry's field (the
--       peer's key), 4 its value, 5 the list's time to live (ms), 6 the
--       most entries listed
-- Returns {id (0: the user is gone), live sessions}.
local function lp(s) s = tostring(s) return #s .. ':' .. s end
local function put(key, field, value, ttl, max)
  local old = redis.call('HGET', key, field)
  if old then
    local g1, e1, t1 = string.match(old, '^([^|]*)|([^|]*)|(%d+)|')
    local g2, e2, t2 = string.match(value, '^([^|]*)|([^|]*)|(%d+)|')
    if g1 == g2 and e1 == e2 and tonumber(t1) > tonumber(t2) then
      return
    end
  end
  redis.call('HSET', key, field, value)
  redis.call('PEXPIRE', key, ttl)
  if redis.call('HLEN', key) > tonumber(max) then
    local all = redis.call('HGETALL', key)
    local oldest, oldestTS
    for i = 1, #all, 2 do
      local ts = tonumber(string.match(all[i + 1], '^[^|]*|[^|]*|%d+|(%d+)|'))
      if not oldestTS or ts < oldestTS then
        oldest, oldestTS = all[i], ts
      end
    end
    redis.call('HDEL', key, oldest)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local id, n = 0, 0
local name = redis.call('HGET', KEYS[1], 'name')
if name then
  id = redis.call('HINCRBY', KEYS[1], 'dmid', 1)
  n = redis.call('ZCARD', KEYS[2])
  redis.call('SPUBLISH', KEYS[3], 'd' .. lp(id) .. lp(name) .. ARGV[2])
end
if ARGV[3] ~= '' then
  put(KEYS[4], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
end
return {id, n}
