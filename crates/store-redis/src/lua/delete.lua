-- delete, with an optional version check, atomically.
--
-- KEYS[1]   the record's Redis key
-- ARGV[1]   the expected version as the header writes it ('' = whatever is there)
-- ARGV[2]   now, as the header writes times (the client's clock)
-- ARGV[3]   the channel to publish the change on
-- ARGV[4]   the store key
--
-- Replies {'ok'} | {'absent'} (absent or expired) | {'conflict', version} | {'corrupt'}.
-- A value store-redis did not write (also one of another type than a string) is deleted
-- only without a version check.
local cur = redis.pcall('GET', KEYS[1])
if not cur then
  return {'absent'}
end
if type(cur) ~= 'string' or string.sub(cur, 1, 1) ~= '1' or string.len(cur) < 41 then
  if ARGV[1] ~= '' then
    return {'corrupt'}
  end
else
  if string.sub(cur, 22, 41) <= ARGV[2] then
    return {'absent'}
  end
  local version = string.sub(cur, 2, 21)
  if ARGV[1] ~= '' and version ~= ARGV[1] then
    return {'conflict', version}
  end
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return {'ok'}
