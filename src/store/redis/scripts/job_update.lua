-- Replaces a sync job only if its stored version is the expected one
-- (compare-and-set), taking or releasing its kind's running guard in the
-- same step. So of several nodes sweeping the same stale job, one wins.
-- KEYS[1] jobs hash   KEYS[2] running hash   KEYS[3] deadlines zset
-- ARGV[1] id  ARGV[2] expected version  ARGV[3] record JSON  ARGV[4] kind
-- ARGV[5] '1' when the new status is running  ARGV[6] deadline ms or ''
-- Reply: {'done'} | {'moved', record or ''} | {'busy', record}
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  return {'moved', ''}
end
if tostring(cjson.decode(current).version) ~= ARGV[2] then
  return {'moved', current}
end
local holder = redis.call('HGET', KEYS[2], ARGV[4])
if ARGV[5] == '1' then
  if holder and holder ~= ARGV[1] then
    local record = redis.call('HGET', KEYS[1], holder)
    if record then
      return {'busy', record}
    end
  end
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[1])
elseif holder == ARGV[1] then
  redis.call('HDEL', KEYS[2], ARGV[4])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return {'done'}
