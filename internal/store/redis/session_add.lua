-- Adds labels to one session, atomically. KEYS[1]: the session's hash (label -> JSON);
-- KEYS[2]: the agent's sorted set of sessions (member "hex(user):hex(id)", score last use ms).
-- ARGV: now ms, ttl ms, max labels, max sessions, member, session key prefix, floor key prefix,
-- then label name, label JSON pairs. An evicted session's labels join its user's floor.
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local maxL, maxS = tonumber(ARGV[3]), tonumber(ARGV[4])
local member, sp, fp = ARGV[5], ARGV[6], ARGV[7]
-- Each hash holds its last use (ms) under "~t" (label names never start with "~").
local function ended(key)
  local t = tonumber(redis.call('HGET', key, '~t'))
  return t and now - t > ttl
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
if ended(KEYS[1]) then redis.call('DEL', KEYS[1]) end
if not redis.call('ZSCORE', KEYS[2], member) then
  while redis.call('ZCARD', KEYS[2]) >= maxS do
    local old = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    redis.call('ZREM', KEYS[2], old)
    local sk = sp .. old
    local labels = redis.call('HGETALL', sk)
    if #labels > 2 then
      local fk = fp .. string.match(old, '^([^:]*):')
      if ended(fk) then redis.call('DEL', fk) end
      for i = 1, #labels, 2 do
        if labels[i] ~= '~t' then redis.call('HSETNX', fk, labels[i], labels[i + 1]) end
      end
      redis.call('HSET', fk, '~t', now)
      redis.call('PEXPIRE', fk, ttl)
    end
    redis.call('DEL', sk)
  end
end
redis.call('ZADD', KEYS[2], now, member)
redis.call('PEXPIRE', KEYS[2], ttl)
for i = 8, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then
    if redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], '~t') >= maxL then
      redis.call('HSET', KEYS[1], '~t', now)
      redis.call('PEXPIRE', KEYS[1], ttl)
      return redis.error_reply('session label capacity')
    end
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
redis.call('HSET', KEYS[1], '~t', now)
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
