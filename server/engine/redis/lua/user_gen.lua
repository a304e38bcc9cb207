-- user_gen: who holds a user's name now (the generation of a DM's sender
-- the server API names): its token and whether it is verified.
-- KEYS: 1 user hash
-- Returns {} (nobody) | {token, verified ('1' or '')}.
local u = redis.call('HMGET', KEYS[1], 'token', 'v')
if not u[1] then
  return {}
end
return {u[1], u[2] or ''}
