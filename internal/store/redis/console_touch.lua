-- Returns a live console session's data, moving its idle deadline; deletes an expired one.
-- KEYS[1]: the index; KEYS[2]: the session's hash; KEYS[3]: the sessions by idle deadline.
-- ARGV: now (ms, the gateway's clock), idle (ms; 0: leave the deadline), the session's member.
local v = redis.call('HMGET', KEYS[2], 'd', 'i', 'e')
if not v[1] then
	redis.call('ZREM', KEYS[1], ARGV[3])
	redis.call('ZREM', KEYS[3], ARGV[3])
	return false
end
local now = tonumber(ARGV[1])
local e = tonumber(v[3])
if tonumber(v[2]) <= now or e <= now then
	redis.call('DEL', KEYS[2])
	redis.call('ZREM', KEYS[1], ARGV[3])
	redis.call('ZREM', KEYS[3], ARGV[3])
	return false
end
local idle = tonumber(ARGV[2])
if idle > 0 then
	local i = now + idle
	if i > e then
		i = e
	end
	redis.call('HSET', KEYS[2], 'i', i)
	redis.call('ZADD', KEYS[3], i, ARGV[3])
end
return v[1]
