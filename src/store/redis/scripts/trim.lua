-- Drops an account's events stored longer ago than the retention age.
-- Events are stored in seq order with Redis's own clock, so the old ones are
-- a prefix of the stream: walk it from the start until a fresh one.
-- KEYS[1] events stream   ARGV[1] retention age in milliseconds
-- Reply: how many events were dropped
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[1])
local dropped = 0
local last = nil
local from = '-'
while true do
  local page = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 256)
  local fresh = false
  for _, entry in ipairs(page) do
    local fields = entry[2]
    local ms = nil
    for i = 1, #fields, 2 do
      if fields[i] == 'ms' then
        ms = tonumber(fields[i + 1])
      end
    end
    if ms and ms >= cutoff then
      fresh = true
      break
    end
    last = entry[1]
    dropped = dropped + 1
  end
  if fresh or #page < 256 then
    break
  end
  from = '(' .. last
end
if last then
  local seq = tonumber(string.match(last, '^(%d+)'))
  redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d', seq + 1))
end
return dropped
