-- lib/dm_gate.lua: put in place of the include line of the scripts that
-- name it (scripts.go, readScript). gate decides whether a private message
-- may go to the user of hash (its sessions in the sorted set sessions) at
-- now (ms): refused if the user has no session (or is only reserved) or
-- receives beyond its rate, a GCRA bucket in the user's hash ('tat') of
-- one message per interval (ms) and burst; else it takes a token of the
-- bucket. It returns the refusal ({'none'} | {'reserved', name} |
-- {'busy', name}) or nil, the user's fields (name, color, token, tat, v)
-- and its live sessions.
local function gate(hash, sessions, now, interval, burst)
  redis.call('ZREMRANGEBYSCORE', sessions, '-inf', now)
  local u = redis.call('HMGET', hash, 'name', 'color', 'token', 'tat', 'v')
  if not u[3] then
    return {'none'}
  end
  local n = redis.call('ZCARD', sessions)
  if n == 0 then
    return {'reserved', u[1]}
  end
  local tat = tonumber(u[4]) or now
  if tat < now then
    tat = now
  end
  local next = tat + interval
  if next - now > burst * interval + 0.001 then
    return {'busy', u[1]}
  end
  redis.call('HSET', hash, 'tat', tostring(next))
  return nil, u, n
end
