-- claim: make a session a session of a user: a name nobody holds is taken;
-- a name held by another token is refused unless the session's connection
-- already holds one of the user's sessions; and the user's connections on
-- every node beyond the cap are kicked, oldest first (those of other nodes
-- through the user's channel). A verified claim (engine.Claim.Verified)
-- makes a verified user (field v, no token) and takes only a verified
-- user of its exact name; an unverified one never takes a verified user.
-- KEYS: 1 user hash, 2 sessions set, 3 the user's channel
-- ARGV: 1 name, 2 colour, 3 token asked ('' none), 4 a new token,
--       5 node, 6 connection id, 7 its since (ms), 8 session id,
--       9 now (ms), 10 a session's time to live (ms), 11 the name grace
--       (ms), 12 the most connections (0: no limit), 13 verified ('1' or
--       '')
-- Returns {'taken', name, live sessions, ms the name stays reserved} |
-- {'ok', name, colour, token, live sessions, kicks: node, conn, since…}.
local function lp(s) s = tostring(s) return #s .. ':' .. s end
local now = tonumber(ARGV[9])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local u = redis.call('HMGET', KEYS[1], 'name', 'color', 'token', 'v')
local conn = ARGV[5] .. '|' .. ARGV[6] .. '|'
local verified = ARGV[13] == '1'
if u[3] then
  if verified or u[4] == '1' then
    if not verified or u[4] ~= '1' or u[1] ~= ARGV[1] then
      return {'taken', u[1], redis.call('ZCARD', KEYS[2]), redis.call('PTTL', KEYS[1])}
    end
  elseif ARGV[3] ~= u[3] then
    local same = false
    for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
      if string.sub(m, 1, #conn) == conn then
        same = true
        break
      end
    end
    if not same then
      return {'taken', u[1], redis.call('ZCARD', KEYS[2]), redis.call('PTTL', KEYS[1])}
    end
  end
else
  local tok = ARGV[3]
  if verified then
    tok = ''
  elseif tok == '' then
    tok = ARGV[4]
  end
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'name', ARGV[1], 'color', ARGV[2], 'token', tok)
  if verified then
    redis.call('HSET', KEYS[1], 'v', '1')
  end
  u = {ARGV[1], ARGV[2], tok}
end
local ttl = tonumber(ARGV[10])
redis.call('ZADD', KEYS[2], now + ttl, conn .. ARGV[7] .. '|' .. ARGV[8])
redis.call('PEXPIRE', KEYS[1], ttl + tonumber(ARGV[11]))
redis.call('PEXPIRE', KEYS[2], ttl + tonumber(ARGV[11]))
-- The user's connections, each once.
local members = redis.call('ZRANGE', KEYS[2], 0, -1)
local seen, conns = {}, {}
for _, m in ipairs(members) do
  local node, id, since = string.match(m, '^(.*)|(%d+)|(%d+)|%d+$')
  local c = node .. '|' .. id .. '|'
  if node and not seen[c] then
    seen[c] = true
    if c ~= conn then
      -- The id stays a string: a Lua number holds integers exactly only
      -- up to 2^53.
      table.insert(conns, {tonumber(since), node, id})
    end
  end
end
local out = {'ok', u[1], u[2], u[3], #members}
local max = tonumber(ARGV[12])
local n = #conns + 1
if max > 0 and n > max then
  table.sort(conns, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    if a[2] ~= b[2] then return a[2] < b[2] end
    if #a[3] ~= #b[3] then return #a[3] < #b[3] end
    return a[3] < b[3]
  end)
  for i = 1, n - max do
    local c = conns[i]
    table.insert(out, c[2])
    table.insert(out, c[3])
    table.insert(out, c[1])
    if c[2] ~= ARGV[5] then
      redis.call('SPUBLISH', KEYS[3], 'k' .. lp(c[2]) .. lp(c[3]) .. lp(u[1]))
    end
  end
end
return out
