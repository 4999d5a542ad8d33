-- Saves a monitor's check state only while the monitor exists, so a check
-- that finishes after a delete cannot bring its monitor back.
-- KEYS[1] monitor specs hash   KEYS[2] monitor states hash
-- ARGV[1] monitor id   ARGV[2] state JSON
-- Reply: 1 saved, 0 no such monitor
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  return 1
end
return 0
