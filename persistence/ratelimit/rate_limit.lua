-- Many independent requests, each a set of GCRA buckets and an optional daily quota checked and charged
-- atomically, decided in order in one call (engine/ratelimit.py explains GCRA; its decide() is the model this
-- script must agree with, and tests/integration/test_rate_limit_script.py holds the two to the same answers).
-- A request sees every charge of the requests before it in the call, exactly as if each had come in a call of its
-- own. One call per request cost the gateway a quarter of its CPU in a flash sale (redis-py packs, sends and
-- parses each call), so the gateway sends its requests in batches (gateway/ratelimit.py).
--
-- Redis Cluster: every key of one call must live in one hash slot. An org's buckets and quotas share the hash tag
-- {org_id} (persistence/redis_keys.py), so the gateway batches per org; keys of other tags go in calls of their own.
--
-- KEYS         per request in order: its buckets, then its quota counter when it has one. A bucket is a STRING,
--              its TAT in integer microseconds (absent: a rested bucket); a quota counter a HASH d = UTC day
--              number, n = requests counted that day
-- ARGV[1]      now in microseconds, or '' to read Redis TIME (every gateway then shares the one clock). Tests
--              pass a clock of their own; under it nothing gets an expiry, since a test clock need not keep pace
--              with real time (an expiry in real time could drop a bucket whose TAT still lies ahead).
-- ARGV[2..]    per request: mode, quota, bucket count n, then per bucket three numbers: interval_us, burst, cost
--              mode:  'all'  admit only if every bucket (and the quota) admits, then charge them all; a refusal
--                            charges nothing
--                     'peek' only say whether 'all' would admit; charge nothing
--                     'each' charge every bucket that admits, independently (failure budgets: each failure
--                            counts wherever it still can)
--              quota: requests per UTC day (0: none, and no quota key)
--
-- Returns per request three numbers: admitted (1 or 0), the refusing index (1-based within the request; n+1 is
-- the quota; 0 when admitted), retry_after_us. The refusing bucket is the one that frees up last, so retrying after
-- retry_after_us finds them all admitting.

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
local day_us = 86400000000
local day = math.floor(now / day_us)

-- Every key is read at most once and written at most once, at the end: in a sale most requests of a batch share
-- their key's and their address's bucket, and Redis shares the machine's CPU with the gateway.
local tats = {} -- bucket key -> TAT as charged so far in this call
local counts = {} -- quota key -> requests counted today, as charged so far in this call
local changed_tats, changed_counts = {}, {}

local function tat_of(key)
  local tat = tats[key]
  if tat == nil then
    tat = tonumber(redis.call('GET', key) or '0')
    tats[key] = tat
  end
  return tat
end

local function count_of(key)
  local counted = counts[key]
  if counted == nil then
    local stored = redis.call('HMGET', key, 'd', 'n')
    counted = 0
    if tonumber(stored[1] or '-1') == day then
      counted = tonumber(stored[2] or '0')
    end
    counts[key] = counted
  end
  return counted
end

-- One request: its buckets are KEYS[k + 1 ..], its numbers ARGV[a + 1 ..]. Returns the next k and a.
local function decide(k, a, verdicts)
  local mode, quota, n = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local new_tats = {}
  local refused, wait = 0, 0
  for i = 1, n do
    local interval = tonumber(ARGV[a + 3 * i + 1])
    local burst = tonumber(ARGV[a + 3 * i + 2])
    local cost = tonumber(ARGV[a + 3 * i + 3])
    local new_tat = math.max(tat_of(KEYS[k + i]), now) + cost * interval
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
  local quota_key = quota > 0 and KEYS[k + n + 1] or nil
  if quota_key and count_of(quota_key) + 1 > quota then
    local until_midnight = (day + 1) * day_us - now
    if until_midnight > wait then
      refused, wait = n + 1, until_midnight
    end
  end
  if mode ~= 'peek' and (mode ~= 'all' or refused == 0) then
    for i = 1, n do
      if new_tats[i] then
        tats[KEYS[k + i]] = new_tats[i]
        changed_tats[KEYS[k + i]] = true
      end
    end
    if quota_key and counts[quota_key] + 1 <= quota then
      counts[quota_key] = counts[quota_key] + 1
      changed_counts[quota_key] = true
    end
  end
  verdicts[#verdicts + 1] = refused == 0 and 1 or 0
  verdicts[#verdicts + 1] = refused
  verdicts[#verdicts + 1] = wait
  return k + n + (quota_key and 1 or 0), a + 3 + 3 * n
end

local verdicts = {}
local k, a = 0, 1
while a < #ARGV do
  k, a = decide(k, a, verdicts)
end

for key in pairs(changed_tats) do
  local value = string.format('%.0f', tats[key])
  if test_clock then
    redis.call('SET', key, value)
  else
    -- The bucket is rested again once now reaches its TAT: it may vanish then (absent means rested).
    redis.call('SET', key, value, 'PX', math.max(1, math.ceil((tats[key] - now) / 1000)))
  end
end
for key in pairs(changed_counts) do
  -- A count of another day was read as 0, so this starts the day again; the hash vanishes at the next midnight.
  redis.call('HSET', key, 'd', string.format('%.0f', day), 'n', string.format('%.0f', counts[key]))
  if not test_clock then
    redis.call('PEXPIREAT', key, string.format('%.0f', (day + 1) * 86400000))
  end
end
return verdicts
