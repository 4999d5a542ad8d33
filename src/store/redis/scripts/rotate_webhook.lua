-- Rotates a webhook endpoint's secret: the old one moves to the front of
-- previousSecrets (signing until ARGV[4]), at most three are kept.
--
-- KEYS[1] the endpoints hash
-- ARGV[1] id   ARGV[2] scope ('' = every account)   ARGV[3] the new secret
-- ARGV[4] until when the old secret signs (ms)
-- Reply: the endpoint's JSON after the change, or false when there is no
-- such endpoint in that scope.

local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  return false
end
local e = cjson.decode(current)
local scope = e.accountId
if scope == nil or scope == cjson.null then
  scope = ''
end
if scope ~= ARGV[2] then
  return false
end
local previous = {{secret = e.secret, untilMs = tonumber(ARGV[4])}}
if type(e.previousSecrets) == 'table' then
  for _, p in ipairs(e.previousSecrets) do
    if #previous < 3 then
      table.insert(previous, p)
    end
  end
end
e.previousSecrets = previous
e.secret = ARGV[3]
local text = cjson.encode(e)
redis.call('HSET', KEYS[1], ARGV[1], text)
return text
