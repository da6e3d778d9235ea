-- create, cas_by_version and put (of one record or several), atomically.
--
-- KEYS[1]     the key prefix's version counter
-- KEYS[2..]   the records' Redis keys (one for create and cas)
-- ARGV[1]     mode: 'create' | 'cas' | 'put'
-- ARGV[2]     the expected version (cas), as the header writes it
-- ARGV[3]     now, as the header writes times (the client's clock)
-- ARGV[4]     the channel to publish each change on
-- then four arguments per record:
--   expiry (header digits), PXAT milliseconds ('' = never expires), value, store key
--
-- A stored value is '1' .. version (20 digits) .. expiry (20 digits) .. value; digits of one
-- width compare as strings the way they compare as numbers. A record is live while its
-- expiry is greater than now.
--
-- Replies {'ok', version...} | {'exists', version} | {'conflict', version} | {'absent'} |
-- {'corrupt'}. Every check comes before the first write, so a refused call changed nothing.
local mode, expected, now, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

if mode ~= 'put' then
  local cur = redis.call('GET', KEYS[2])
  local live = false
  if cur then
    if string.sub(cur, 1, 1) ~= '1' or string.len(cur) < 41 then
      return {'corrupt'}
    end
    live = string.sub(cur, 22, 41) > now
  end
  if live then
    local version = string.sub(cur, 2, 21)
    if mode == 'create' then
      return {'exists', version}
    elseif version ~= expected then
      return {'conflict', version}
    end
  elseif mode == 'cas' then
    return {'absent'}
  end
end

local reply = {'ok'}
for i = 2, #KEYS do
  local arg = 5 + (i - 2) * 4
  local expiry, pxat, value, key = ARGV[arg], ARGV[arg + 1], ARGV[arg + 2], ARGV[arg + 3]
  local version = string.format('%020d', redis.call('INCR', KEYS[1]))
  if expiry <= now then
    -- Written already expired: absent at once.
    redis.call('DEL', KEYS[i])
  elseif pxat == '' then
    redis.call('SET', KEYS[i], '1' .. version .. expiry .. value)
  else
    redis.call('SET', KEYS[i], '1' .. version .. expiry .. value, 'PXAT', pxat)
  end
  redis.call('PUBLISH', channel, key)
  reply[#reply + 1] = version
end
return reply
