-- The account's epoch, head seq and snapshot entries, read together.
-- KEYS[1] meta hash   KEYS[2] entries hash
-- ARGV[1] a fresh epoch, stored when the account has none yet, so the epoch
--         a reader sees is the one the next append continues
-- Reply: {epoch, seq, {field, value, ...}}
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local seq = redis.call('HGET', KEYS[1], 'seq') or '0'
return {epoch, seq, redis.call('HGETALL', KEYS[2])}
