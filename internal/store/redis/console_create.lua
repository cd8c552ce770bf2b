-- Creates a console session unless ARGV[4] are live.
-- KEYS[1]: the index (sorted set of sessions by absolute expiry, ms); KEYS[2]: the session's hash;
-- KEYS[3]: the sessions by idle deadline (ms).
-- ARGV: now, idle deadline, absolute deadline (ms, the gateway's clock), max, data, the
-- session's member in the index, the prefix of session keys (same hash tag as KEYS), the most
-- idle sessions one call sweeps.
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
-- Sessions idle past their deadline, found by that deadline and a bounded number per call, so
-- that a sign-in's work does not grow with the sessions held. Every sign-in sweeps: the sweep
-- keeps up with the sessions created, and one that finds any makes room at the cap. A session
-- past its absolute deadline is past its idle one too (the idle one never passes it).
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[8]))) do
	redis.call('DEL', ARGV[7] .. m)
	redis.call('ZREM', KEYS[1], m)
	redis.call('ZREM', KEYS[3], m)
end
if redis.call('ZCARD', KEYS[1]) >= max then
	return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then
	return redis.error_reply('a session with this key exists')
end
redis.call('HSET', KEYS[2], 'd', ARGV[5], 'i', ARGV[2], 'e', ARGV[3])
-- Collected by Redis once past its absolute deadline: a duration, so Redis's clock need not
-- agree with the gateway's.
redis.call('PEXPIRE', KEYS[2], math.max(1, tonumber(ARGV[3]) - now))
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[6])
return 1
