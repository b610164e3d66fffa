-- Several GCRA buckets and an optional daily quota, checked and charged atomically (engine/ratelimit.py explains
-- GCRA; its decide() is the model this script must agree with, and tests/integration/test_rate_limit_script.py
-- holds the two to the same answers).
--
-- KEYS[1..n]   the buckets: STRING, the bucket's TAT in integer microseconds (absent: a rested bucket)
-- KEYS[n+1]    the quota counter, when ARGV[3] > 0: HASH d = UTC day number, n = requests counted that day
-- ARGV[1]      now in microseconds, or '' to read Redis TIME (every gateway then shares the one clock). Tests
--              pass a clock of their own; under it nothing gets an expiry, since a test clock need not keep pace
--              with real time (an expiry in real time could drop a bucket whose TAT still lies ahead).
-- ARGV[2]      mode: 'all'  admit only if every bucket (and the quota) admits, then charge them all; a refusal
--                           charges nothing
--                    'peek' only say whether 'all' would admit; charge nothing
--                    'each' charge every bucket that admits, independently (failure budgets: each failure
--                           counts wherever it still can)
-- ARGV[3]      the quota: requests per UTC day (0: no quota)
-- ARGV[4..]    per bucket, three numbers: interval_us, burst, cost
--
-- Returns {admitted (1 or 0), refusing index (1-based; n+1 is the quota; 0 when admitted), retry_after_us}: the
-- refusing bucket is the one that frees up last, so retrying after retry_after_us finds them all admitting.

if redis.replicate_commands then
  redis.replicate_commands() -- Redis < 5: allow writes after TIME (later versions always replicate effects)
end

local test_clock = ARGV[1] ~= ''
local now
if test_clock then
  now = tonumber(ARGV[1])
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local mode = ARGV[2]
local quota = tonumber(ARGV[3])
local n = (#ARGV - 3) / 3
local day_us = 86400000000

local new_tats = {}
local refused, wait = 0, 0
for i = 1, n do
  local interval = tonumber(ARGV[3 * i + 1])
  local burst = tonumber(ARGV[3 * i + 2])
  local cost = tonumber(ARGV[3 * i + 3])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  local new_tat = math.max(tat, now) + cost * interval
  local allow_at = new_tat - burst * interval
  if allow_at > now then
    new_tats[i] = false
    if allow_at - now > wait then
      refused, wait = i, allow_at - now
    end
  else
    new_tats[i] = new_tat
  end
end

local day = math.floor(now / day_us)
local counted, same_day = 0, false
if quota > 0 then
  local stored = redis.call('HMGET', KEYS[n + 1], 'd', 'n')
  same_day = tonumber(stored[1] or '-1') == day
  if same_day then
    counted = tonumber(stored[2] or '0')
  end
  if counted + 1 > quota then
    local until_midnight = (day + 1) * day_us - now
    if until_midnight > wait then
      refused, wait = n + 1, until_midnight
    end
  end
end

if mode == 'peek' or (mode == 'all' and refused > 0) then
  return {refused == 0 and 1 or 0, refused, wait}
end

for i = 1, n do
  if new_tats[i] then
    local value = string.format('%.0f', new_tats[i])
    if test_clock then
      redis.call('SET', KEYS[i], value)
    else
      -- The bucket is rested again once now reaches its TAT: it may vanish then (absent means rested).
      redis.call('SET', KEYS[i], value, 'PX', math.max(1, math.ceil((new_tats[i] - now) / 1000)))
    end
  end
end
if quota > 0 and counted + 1 <= quota then
  if same_day then
    redis.call('HINCRBY', KEYS[n + 1], 'n', 1)
  else -- the first request of the day starts the count again; the hash vanishes at the next midnight
    redis.call('HSET', KEYS[n + 1], 'd', string.format('%.0f', day), 'n', 1)
    if not test_clock then
      redis.call('PEXPIREAT', KEYS[n + 1], string.format('%.0f', (day + 1) * 86400000))
    end
  end
end
return {refused == 0 and 1 or 0, refused, wait}
