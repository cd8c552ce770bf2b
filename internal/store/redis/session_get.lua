-- Reads one session's labels and its user's floor, renewing both. KEYS[1]: the session's hash;
-- KEYS[2]: the agent's sorted set of sessions; KEYS[3]: the floor's hash. Each hash holds its
-- last use (ms) under "~t" beside the labels: a hash idle for longer than ttl at the caller's
-- clock has ended (Redis expiry only collects the garbage). ARGV: now ms, ttl ms, member.
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local function live(key)
  local t = tonumber(redis.call('HGET', key, '~t'))
  if not t then return {} end
  if now - t > ttl then
    redis.call('DEL', key)
    return {}
  end
  redis.call('HSET', key, '~t', math.max(t, now))
  redis.call('PEXPIRE', key, ttl)
  local all = redis.call('HGETALL', key)
  local out = {}
  for i = 1, #all, 2 do
    if all[i] ~= '~t' then
      out[#out + 1] = all[i]
      out[#out + 1] = all[i + 1]
    end
  end
  return out
end
local s = live(KEYS[1])
if #s > 0 then
  redis.call('ZADD', KEYS[2], 'XX', now, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {s, live(KEYS[3])}
