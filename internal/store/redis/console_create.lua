-- Creates a console session unless ARGV[4] are live.
-- KEYS[1]: the index (sorted set of sessions by absolute expiry, ms); KEYS[2]: the session's hash.
-- ARGV: now, idle deadline, absolute deadline (ms, the gateway's clock), max, data, the
-- session's member in the index, the prefix of session keys (same hash tag as KEYS).
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= max then
	-- At the cap: sessions left idle past their deadline still count until swept here.
	for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
		local i = redis.call('HGET', ARGV[7] .. m, 'i')
		if not i or tonumber(i) <= now then
			redis.call('DEL', ARGV[7] .. m)
			redis.call('ZREM', KEYS[1], m)
		end
	end
	if redis.call('ZCARD', KEYS[1]) >= max then
		return 0
	end
end
if redis.call('EXISTS', KEYS[2]) == 1 then
	return redis.error_reply('a session with this key exists')
end
redis.call('HSET', KEYS[2], 'd', ARGV[5], 'i', ARGV[2], 'e', ARGV[3])
-- Collected by Redis once past its absolute deadline: a duration, so Redis's clock need not
-- agree with the gateway's.
redis.call('PEXPIRE', KEYS[2], math.max(1, tonumber(ARGV[3]) - now))
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[6])
return 1
