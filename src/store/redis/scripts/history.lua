-- One page of retained events after a seq, with what completeness needs.
-- KEYS[1] meta hash   KEYS[2] events stream
-- ARGV[1] a fresh epoch (as in snapshot.lua)
-- ARGV[2] since (the page starts after it)   ARGV[3] page size
-- Reply: {epoch, head, first retained seq or '0', {{id, {field, value, ...}}, ...}}
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local head = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local since = tonumber(ARGV[2])
local first = '0'
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if oldest[1] then
  first = oldest[1][1]
end
local page = {}
if since < head and tonumber(ARGV[3]) > 0 then
  page = redis.call('XRANGE', KEYS[2], string.format('%d', since + 1), '+', 'COUNT', ARGV[3])
end
return {epoch, string.format('%d', head), first, page}
