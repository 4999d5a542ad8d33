-- Takes a lease if nobody holds it (SET NX PX), else names its holder.
-- KEYS[1] lease   ARGV[1] owner   ARGV[2] ttl in ms
-- Reply: '' granted, else the holder
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return ''
end
return redis.call('GET', KEYS[1])
