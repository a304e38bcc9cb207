-- dm_read: a window of a conversation, for one of its two users: nothing
-- unless the reader's side is of the reader's generation. Messages older
-- than the cutoff go first. Windows as a room's history: after an offset
-- (in the conversation's epoch; else, or when the offset after it is no
-- longer retained, a reset to the latest), before one, or the latest.
-- KEYS: 1 meta hash, 2 stream
-- ARGV: 1 the reader's side ('ga' or 'gb'), 2 its generation, 3 the
--       cutoff (ms), 4 mode ('after', 'before' or 'latest'), 5 the epoch
--       asked, 6 the offset (after or before), 7 the most messages
-- Returns {'none'} | {'ok', epoch, top, first, reset, more, expired,
-- user a, user b, entries (oldest first)}.
-- include: dm_expire
local m = redis.call('HMGET', KEYS[1], 'epoch', 'top', ARGV[1], 'ua', 'ub')
if not m[1] or m[3] ~= ARGV[2] then
  return {'none'}
end
local expired = expire(KEYS[2], tonumber(ARGV[3]))
local top = tonumber(m[2])
local first = 0
local f = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #f > 0 then
  first = tonumber(string.sub(f[1][1], 3))
end
local mode, x, limit = ARGV[4], tonumber(ARGV[6]), tonumber(ARGV[7])
local reset = 0
if mode == 'after' then
  if not (ARGV[5] == m[1] and x <= top and (x == top or (first > 0 and x + 1 >= first))) then
    mode, reset = 'latest', 1
  end
end
local entries, more = {}, 0
if mode == 'after' then
  entries = redis.call('XRANGE', KEYS[2], '(0-' .. x, '+', 'COUNT', limit + 1)
  if #entries > limit then
    table.remove(entries)
    more = 1
  end
else
  local rev
  if mode == 'before' then
    rev = redis.call('XREVRANGE', KEYS[2], '(0-' .. x, '-', 'COUNT', limit + 1)
  else
    rev = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', limit + 1)
  end
  if #rev > limit then
    table.remove(rev)
    more = 1
  end
  for i = #rev, 1, -1 do
    table.insert(entries, rev[i])
  end
end
return {'ok', m[1], top, first, reset, more, expired, m[4] or '', m[5] or '', entries}
