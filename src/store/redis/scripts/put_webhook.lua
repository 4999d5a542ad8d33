-- Creates or updates a webhook endpoint, keeping an existing one's secrets
-- and createdAt; refuses an id held by an endpoint of another scope.
--
-- KEYS[1] the endpoints hash (id -> endpoint JSON)
-- ARGV[1] id   ARGV[2] scope ('' = every account)   ARGV[3] endpoint JSON
--
-- Replies: {'created', json} | {'updated', json} | {'taken'}

local function scope_of(e)
  if e.accountId == nil or e.accountId == cjson.null then
    return ''
  end
  return e.accountId
end

local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return {'created', ARGV[3]}
end
local old = cjson.decode(current)
if scope_of(old) ~= ARGV[2] then
  return {'taken'}
end
local new = cjson.decode(ARGV[3])
new.secret = old.secret
new.createdAt = old.createdAt
new.previousSecrets = old.previousSecrets
local text = cjson.encode(new)
redis.call('HSET', KEYS[1], ARGV[1], text)
return {'updated', text}
