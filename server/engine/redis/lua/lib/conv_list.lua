-- lib/conv_list.lua: put in place of the include line of the scripts
-- that name it (scripts.go, readScript). A user's list of
-- conversations is a hash: peer's key -> GEN|EPOCH|TOP|TS|PEER.
-- put sets field to value unless the entry there is of the same
-- generation and epoch with a later top (a DM delivered out of order does
-- not move the list back), renews the list's time to live and, beyond max
-- entries, drops the entry of the oldest last message.
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
