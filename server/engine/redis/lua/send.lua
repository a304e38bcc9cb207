-- send: append a message to a room and publish it, atomically.
-- KEYS: 1 meta hash, 2 stream, 3 cid hash, 4 the room's channel (named in
--       KEYS so that Redis Cluster checks it hashes to the room's slot)
-- ARGV: 1 the sender's epoch, 2 a new epoch (used if the room is missing),
--       3 the most messages retained, 4 the keys' time to live (ms),
--       5 the dedup field (the sender and its cid; '' without a cid),
--       6 the lowest offset a retry may be a duplicate of, 7 ts (ms),
--       8 the message (blob), 9 node, 10 ticket
-- Returns {'ok', offset, epoch} | {'dup', offset, ts} | {'epoch', epoch}.
local function lp(s) s = tostring(s) return #s .. ':' .. s end
local ttl = ARGV[4]
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  -- A new counter: whatever is left of an older stream goes, so that an
  -- offset is never given twice (a script is not rolled back if XADD fails).
  redis.call('DEL', KEYS[2], KEYS[3])
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
  redis.call('PEXPIRE', KEYS[1], ttl)
end
if epoch ~= ARGV[1] then
  return {'epoch', epoch}
end
local cid = ARGV[5]
if cid ~= '' then
  local prev = redis.call('HGET', KEYS[3], cid)
  if prev then
    local sep = string.find(prev, ':', 1, true)
    local off = tonumber(string.sub(prev, 1, sep - 1))
    if off >= tonumber(ARGV[6]) then
      return {'dup', off, string.sub(prev, sep + 1)}
    end
  end
end
local top = redis.call('HINCRBY', KEYS[1], 'top', 1)
-- Trim to the bound, forgetting the cids of the messages that go.
local max = tonumber(ARGV[3])
local len = redis.call('XLEN', KEYS[2])
if len >= max then
  local old = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', len - max + 1)
  for _, e in ipairs(old) do
    local f = e[2]
    for i = 1, #f, 2 do
      if f[i] == 'k' then
        local v = redis.call('HGET', KEYS[3], f[i + 1])
        local o = string.sub(e[1], 3) .. ':'
        if v and string.sub(v, 1, #o) == o then
          redis.call('HDEL', KEYS[3], f[i + 1])
        end
      end
    end
  end
end
local id = '0-' .. top
if cid ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', max, id, 'd', ARGV[8], 'n', ARGV[9], 't', ARGV[10], 'k', cid)
  redis.call('HSET', KEYS[3], cid, top .. ':' .. ARGV[7])
  redis.call('PEXPIRE', KEYS[3], ttl)
else
  redis.call('XADD', KEYS[2], 'MAXLEN', max, id, 'd', ARGV[8], 'n', ARGV[9], 't', ARGV[10])
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('SPUBLISH', KEYS[4], 'm' .. lp(epoch) .. lp(top) .. lp(ARGV[9]) .. lp(ARGV[10]) .. lp(ARGV[8]))
return {'ok', top, epoch}
