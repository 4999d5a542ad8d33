-- One append, atomically: idempotency, entry check-and-set, next seq, event,
-- snapshot entry, idempotency record and the pub/sub notification.
-- Every refusal happens before the first write, so a refused append leaves
-- nothing behind.
--
-- KEYS[1] meta hash      KEYS[2] events stream
-- KEYS[3] entries hash   KEYS[4] idempotency record ('' key unused when none)
-- KEYS[5] webhook outbox hash (delivery id -> JSON)
-- KEYS[6] pending deliveries (sorted set, score seq)
-- ARGV[1]  a fresh epoch, used when the account has none
-- ARGV[2]  events kept (MAXLEN)
-- ARGV[3]  'fixed' or 'entry'
-- ARGV[4]  the event body (JSON: event, id, publishedAt, data)
-- ARGV[5]  entry field ('<section>:<key>')
-- ARGV[6]  what the caller believes the entry is: '' unknown, '0' absent, '1' ARGV[7]
-- ARGV[7]  the believed entry value
-- ARGV[8]  the entry's next value: '0' remove, '1' set to ARGV[9]
-- ARGV[9]  the next entry value
-- ARGV[10] idempotency fingerprint ('' when the draft has no key)
-- ARGV[11] idempotency record lifetime in seconds
-- ARGV[12] event id   ARGV[13] publishedAt
-- ARGV[14] notification channel
-- ARGV[15] the envelope up to its seq   ARGV[16] the envelope after its seq
-- ARGV[17] account id   ARGV[18] event name
-- ARGV[19..] pairs of (delivery id, endpoint id): the webhook deliveries to
--            queue, decided by the caller with the event's data
--
-- Replies: {'new', seq, epoch} | {'replay', seq, id, publishedAt}
--        | {'conflict'} | {'stale', '0'} | {'stale', '1', current entry}

if ARGV[10] ~= '' then
  local seen = redis.call('HMGET', KEYS[4], 'f', 's', 'i', 'p')
  if seen[1] then
    if seen[1] ~= ARGV[10] then
      return {'conflict'}
    end
    return {'replay', seen[2], seen[3], seen[4]}
  end
end

if ARGV[3] == 'entry' then
  local current = redis.call('HGET', KEYS[3], ARGV[5])
  local same = (ARGV[6] == '0' and current == false)
    or (ARGV[6] == '1' and current == ARGV[7])
  if not same then
    if current then
      return {'stale', '1', current}
    end
    return {'stale', '0'}
  end
end

local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
if seq == 1 then
  -- A new sequence: whatever history is left belongs to an earlier one.
  redis.call('DEL', KEYS[2])
end
local seq_s = string.format('%d', seq)
local now = redis.call('TIME')
local ms = now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], seq_s .. '-0', 'b', ARGV[4], 'ms', ms)

if ARGV[3] == 'entry' then
  if ARGV[8] == '1' then
    redis.call('HSET', KEYS[3], ARGV[5], ARGV[9])
  else
    redis.call('HDEL', KEYS[3], ARGV[5])
  end
end

if ARGV[10] ~= '' then
  redis.call('HSET', KEYS[4], 'f', ARGV[10], 's', seq_s, 'i', ARGV[12], 'p', ARGV[13])
  redis.call('EXPIRE', KEYS[4], ARGV[11])
end

if #ARGV > 18 then
  local body = ARGV[15] .. seq_s .. ARGV[16]
  for i = 19, #ARGV, 2 do
    local record = cjson.encode({
      id = ARGV[i], endpointId = ARGV[i + 1], accountId = ARGV[17], seq = seq,
      eventId = ARGV[12], event = ARGV[18], body = body, status = 'pending',
      attempts = 0, nextAttemptMs = tonumber(ms), leaseUntilMs = 0,
      createdMs = tonumber(ms)
    })
    redis.call('HSET', KEYS[5], ARGV[i], record)
    redis.call('ZADD', KEYS[6], seq, ARGV[i])
  end
end

redis.call('PUBLISH', ARGV[14], seq_s .. ' ' .. epoch .. ' ' .. ARGV[4])
return {'new', seq_s, epoch}
