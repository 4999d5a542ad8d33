-- Starts a sync job unless its kind already has a running one, or its
-- Idempotency-Key names an earlier start: one script, so the guard check and
-- the write cannot be split by another node's start.
-- KEYS[1] jobs hash (id -> record)   KEYS[2] running hash (kind -> id)
-- KEYS[3] order zset (created ms)    KEYS[4] deadlines zset (ms)
-- KEYS[5] idempotency record (a hash that expires)
-- ARGV[1] id  ARGV[2] kind  ARGV[3] record JSON  ARGV[4] created ms
-- ARGV[5] deadline ms or ''  ARGV[6] fingerprint or ''  ARGV[7] ttl seconds
-- Reply: {'created'} | {'replayed', record} | {'busy', record} | {'conflict'}
if ARGV[6] ~= '' then
  local seen = redis.call('HMGET', KEYS[5], 'f', 'id')
  if seen[1] then
    if seen[1] ~= ARGV[6] then
      return {'conflict'}
    end
    local first = redis.call('HGET', KEYS[1], seen[2])
    if first then
      return {'replayed', first}
    end
  end
end
local running = redis.call('HGET', KEYS[2], ARGV[2])
if running then
  local record = redis.call('HGET', KEYS[1], running)
  if record then
    return {'busy', record}
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[5], 'f', ARGV[6], 'id', ARGV[1])
  redis.call('EXPIRE', KEYS[5], ARGV[7])
end
return {'created'}
