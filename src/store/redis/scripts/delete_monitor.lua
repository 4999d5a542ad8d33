-- Deletes a monitor and its saved state together.
-- KEYS[1] monitor specs hash   KEYS[2] monitor states hash   ARGV[1] monitor id
-- Reply: 1 deleted, 0 it did not exist
local deleted = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return deleted
