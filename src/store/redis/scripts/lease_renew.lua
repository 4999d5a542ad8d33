-- Extends a lease only if the caller still holds it (compare and renew).
-- KEYS[1] lease   ARGV[1] owner   ARGV[2] ttl in ms
-- Reply: 1 renewed, 0 not held by the caller (nothing changed)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
