-- The headers and sizes of several stored values, read at one instant.
--
-- KEYS   the Redis keys
--
-- Replies with one {header, length} per key: the first 41 bytes of the value and its
-- length, {'', 0} for an absent key, and {'not a string', 0} for a key holding another
-- type of value (which the client reports as corrupt).
local reply = {}
for i = 1, #KEYS do
  local header = redis.pcall('GETRANGE', KEYS[i], 0, 40)
  if type(header) == 'string' then
    reply[i] = {header, redis.call('STRLEN', KEYS[i])}
  else
    reply[i] = {'not a string', 0}
  end
end
return reply
