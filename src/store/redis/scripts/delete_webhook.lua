-- Deletes a webhook endpoint of the given scope.
--
-- KEYS[1] the endpoints hash   ARGV[1] id   ARGV[2] scope ('' = every account)
-- Reply: 1 deleted, 0 no such endpoint in that scope.

local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  return 0
end
local old = cjson.decode(current)
local scope = old.accountId
if scope == nil or scope == cjson.null then
  scope = ''
end
if scope ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
