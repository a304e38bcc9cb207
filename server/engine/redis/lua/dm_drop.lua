-- dm_drop: delete a conversation evicted from the deployment's set
-- (dm_reg), unless a message came since.
-- KEYS: 1 meta hash, 2 stream
-- ARGV: 1 the evicted conversation's score (its newest message's time, ms)
-- Returns 1 if deleted, 0 if not.
local ts = redis.call('HGET', KEYS[1], 'ts')
if ts and tonumber(ts) > tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
