-- Claims the due head deliveries of one account's outbox: per endpoint the
-- pending delivery with the lowest seq (test deliveries, seq 0, are always
-- heads), if due and not leased; each claimed one is leased until
-- now + lease. One script, so two nodes never claim the same delivery.
--
-- KEYS[1] outbox hash   KEYS[2] pending sorted set (by seq)
-- ARGV[1] now (ms)      ARGV[2] lease (ms)   ARGV[3] most to claim
-- Reply: the claimed deliveries' JSON.

local now = tonumber(ARGV[1])
local seen = {}
local claimed = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local text = redis.call('HGET', KEYS[1], id)
  if not text then
    redis.call('ZREM', KEYS[2], id)
  else
    local d = cjson.decode(text)
    local head = d.seq == 0 or not seen[d.endpointId]
    if d.seq ~= 0 then
      seen[d.endpointId] = true
    end
    if head and d.nextAttemptMs <= now and d.leaseUntilMs <= now then
      d.leaseUntilMs = now + tonumber(ARGV[2])
      local updated = cjson.encode(d)
      redis.call('HSET', KEYS[1], id, updated)
      table.insert(claimed, updated)
      if #claimed >= tonumber(ARGV[3]) then
        break
      end
    end
  end
end
return claimed
