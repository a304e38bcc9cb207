-- dm_reg: the deployment's conversations, by the time of their newest
-- message, bounded: beyond the most, the least recently active ones are
-- taken out (the caller deletes them, dm_drop); those older than the
-- cutoff leave the set (their keys expire by themselves).
-- KEYS: 1 the conversations (sorted set: conversation, score its newest
--       message's time in ms)
-- ARGV: 1 the conversation, 2 its newest message's time (ms), 3 the cutoff
--       (ms), 4 the most conversations
-- Returns {conversations kept, evicted conversation, its score, …}.
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
local out = {n}
local extra = n - tonumber(ARGV[4])
if extra > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], extra)
  for i = 1, #popped do
    table.insert(out, popped[i])
  end
  out[1] = n - extra
end
return out
