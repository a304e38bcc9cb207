-- dm_sender: the copy of a private message for the sender's other
-- sessions, published on the sender's channel if it has any; with DM
-- history, the recipient's entry in the sender's list of conversations.
-- KEYS: 1 sessions set, 2 the user's channel, 3 the user's conversations
--       (hash: peer's key → GEN|EPOCH|TOP|TS|PEER)
-- ARGV: 1 now (ms), 2 the payload, 3 '1' when the sending session is one
--       of them (it does not get the copy), '0' when none is (the server
--       API sent it), 4 the entry's field (the peer's key; '': none), 5
--       its value, 6 the list's time to live (ms), 7 the most entries
-- Returns the sender's live sessions (the sending one included).
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
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n > tonumber(ARGV[3]) then
  redis.call('SPUBLISH', KEYS[2], ARGV[2])
end
if ARGV[4] and ARGV[4] ~= '' then
  put(KEYS[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
end
return n
