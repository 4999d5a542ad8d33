-- Records an attempt on a pending delivery (or only frees its lease, or
-- makes any delivery pending again for a manual retry).
--
-- KEYS[1] outbox hash   KEYS[2] pending sorted set
-- ARGV[1] delivery id   ARGV[2] 'attempt' | 'release' | 'retry'
-- ARGV[3] next status ('pending', 'delivered', 'failed')
-- ARGV[4] next attempt (ms)   ARGV[5] HTTP status ('' none)
-- ARGV[6] error ('' none)     ARGV[7] latency (ms)
-- Reply: the delivery's JSON after the change, or false when there is none
-- (or, for an attempt, when it is no longer pending).

local text = redis.call('HGET', KEYS[1], ARGV[1])
if not text then
  return false
end
local d = cjson.decode(text)
if ARGV[2] == 'release' then
  d.leaseUntilMs = 0
elseif ARGV[2] == 'retry' then
  d.status = 'pending'
  d.nextAttemptMs = tonumber(ARGV[4])
  d.leaseUntilMs = 0
  redis.call('ZADD', KEYS[2], d.seq, ARGV[1])
else
  if d.status ~= 'pending' then
    return false
  end
  d.status = ARGV[3]
  d.nextAttemptMs = tonumber(ARGV[4])
  d.leaseUntilMs = 0
  d.attempts = d.attempts + 1
  d.lastStatus = (ARGV[5] ~= '' and tonumber(ARGV[5])) or nil
  d.lastError = (ARGV[6] ~= '' and ARGV[6]) or nil
  d.lastLatencyMs = tonumber(ARGV[7])
  if d.status ~= 'pending' then
    redis.call('ZREM', KEYS[2], ARGV[1])
  end
end
local updated = cjson.encode(d)
redis.call('HSET', KEYS[1], ARGV[1], updated)
return updated
