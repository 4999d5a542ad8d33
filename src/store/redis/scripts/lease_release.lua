-- Frees a lease only if the caller holds it (compare and delete).
-- KEYS[1] lease   ARGV[1] owner
-- Reply: 1 released, 0 not held by the caller (nothing changed)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
