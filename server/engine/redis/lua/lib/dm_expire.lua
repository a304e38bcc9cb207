-- lib/dm_expire.lua: put in place of the include line of the scripts
-- that name it (scripts.go, readScript). expire deletes the entries of a
-- conversation's stream older than cutoff (Unix ms; an entry's data
-- starts with its time as a length-prefixed field), oldest first, 16 at a
-- time, and returns how many went.
local function expire(stream, cutoff)
  local n = 0
  while true do
    local old = redis.call('XRANGE', stream, '-', '+', 'COUNT', 16)
    if #old == 0 then
      return n
    end
    for _, e in ipairs(old) do
      local d = e[2][2]
      local sep = string.find(d, ':', 1, true)
      local ts = tonumber(string.sub(d, sep + 1, sep + tonumber(string.sub(d, 1, sep - 1))))
      if ts >= cutoff then
        return n
      end
      redis.call('XDEL', stream, e[1])
      n = n + 1
    end
  end
end
