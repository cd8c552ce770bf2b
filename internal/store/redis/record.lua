-- Records one call and returns what the behavior store contract promises, atomically.
-- KEYS: 1 agent stats hash, 2 agent recent zset, 3 tool hash, 4 tool zset.
-- ARGV: 1 second, 2 millisecond, 3 max window (s), 4 burst window (s), 5 param size,
--       6 param size squared, 7 hour-of-week bucket, 8 idle ttl (s), 9.. count windows (s).
local sec = tonumber(ARGV[1])
local stats = redis.call('HMGET', KEYS[1], 'calls', 'active', 'first', 'h' .. ARGV[7])
local tool = redis.call('HMGET', KEYS[3], 'calls', 'pn', 'psum', 'psumsq')

local cutoff = sec - tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cutoff)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', cutoff)
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], sec, seq)
redis.call('ZADD', KEYS[4], sec, seq)

redis.call('HINCRBY', KEYS[1], 'calls', 1)
local minute = tostring(math.floor(sec / 60))
if redis.call('HGET', KEYS[1], 'lastmin') ~= minute then
  redis.call('HINCRBY', KEYS[1], 'active', 1)
  redis.call('HSET', KEYS[1], 'lastmin', minute)
end
redis.call('HSETNX', KEYS[1], 'first', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'h' .. ARGV[7], 1)

redis.call('HINCRBY', KEYS[3], 'calls', 1)
redis.call('HINCRBY', KEYS[3], 'pn', 1)
redis.call('HINCRBYFLOAT', KEYS[3], 'psum', ARGV[5])
redis.call('HINCRBYFLOAT', KEYS[3], 'psumsq', ARGV[6])

local burst = redis.call('ZCOUNT', KEYS[2], '(' .. tostring(sec - tonumber(ARGV[4])), '+inf')
local counts = {}
for i = 9, #ARGV do
  counts[#counts + 1] = redis.call('ZCOUNT', KEYS[4], '(' .. tostring(sec - tonumber(ARGV[i])), '+inf')
end
for i = 1, 4 do
  redis.call('EXPIRE', KEYS[i], ARGV[8])
end
return {stats, tool, burst, counts}
