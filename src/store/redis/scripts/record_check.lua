-- Keeps one check of a monitor, folds its checks past the raw window into
-- hourly buckets and drops what is past the window, all in one step.
-- KEYS[1] checks zset (score: time, member: check JSON with a nonce)
-- KEYS[2] buckets zset (score: bucket start, member: bucket JSON)
-- KEYS[3] transitions zset (score: time, member: transition JSON with a nonce)
-- KEYS[4] the account's set of monitors with history
-- ARGV[1] monitor id   ARGV[2] check time   ARGV[3] check JSON
-- ARGV[4] transition JSON or ''   ARGV[5] fold checks before this time
-- ARGV[6] drop buckets and transitions before this time
-- ARGV[7] bucket width (ms)   ARGV[8] transitions kept at most
-- Reply: the number of checks folded
local at = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], at, ARGV[3])
redis.call('SADD', KEYS[4], ARGV[1])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[3], at, ARGV[4])
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[8]) + 1))
end
local fold_before = tonumber(ARGV[5])
local width = tonumber(ARGV[7])
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[5])
local buckets = {}
for _, member in ipairs(old) do
  local c = cjson.decode(member)
  local start = math.floor(c.atMs / width) * width
  local b = buckets[start]
  if not b then
    b = {startMs = start, checks = 0, ok = 0, healthy = 0, unhealthy = 0, unknown = 0,
         transitions = 0, latencySum = 0, latencyMin = c.latencyMs, latencyMax = c.latencyMs}
    buckets[start] = b
  end
  b.checks = b.checks + 1
  if c.ok then b.ok = b.ok + 1 end
  if c.health == 'healthy' then b.healthy = b.healthy + 1
  elseif c.health == 'unhealthy' then b.unhealthy = b.unhealthy + 1
  else b.unknown = b.unknown + 1 end
  if type(c.transition) == 'string' then b.transitions = b.transitions + 1 end
  b.latencySum = b.latencySum + c.latencyMs
  b.latencyMin = math.min(b.latencyMin, c.latencyMs)
  b.latencyMax = math.max(b.latencyMax, c.latencyMs)
end
for start, b in pairs(buckets) do
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], start, start)) do
    local e = cjson.decode(member)
    for _, f in ipairs({'checks', 'ok', 'healthy', 'unhealthy', 'unknown', 'transitions', 'latencySum'}) do
      b[f] = b[f] + e[f]
    end
    b.latencyMin = math.min(b.latencyMin, e.latencyMin)
    b.latencyMax = math.max(b.latencyMax, e.latencyMax)
    redis.call('ZREM', KEYS[2], member)
  end
  redis.call('ZADD', KEYS[2], start, cjson.encode(b))
end
if #old > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[5])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[6])
return #old
