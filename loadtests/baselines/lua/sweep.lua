-- ARGV[3] due holds drained at most. Answers the confirming holds whose lease has passed (for Postgres to settle).
local max = tonumber(ARGV[3])
drain(max)
return redis.call('ZRANGEBYSCORE', K_CONFIRMING, '-inf', NOW, 'LIMIT', 0, max)
