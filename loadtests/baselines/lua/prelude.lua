-- Shared by every script of the Redis baseline (loadtests/baselines/redis_lua.py), prepended at load time.
-- KEYS: counts, seat index, availability bitmap, holds, expiry zset, confirming zset, buyers.
-- ARGV[1]: the event's key prefix (its GA free-unit lists are <prefix>units:<code>); ARGV[2]: now (epoch s).
-- A hold record (cmsgpack): b buyer, s seat ids, i seat indexes, t ticket type, q quantity, u GA units,
-- x expires_at, st held|confirming|sold|released|expired, o order_ref.
local K_COUNTS, K_SEATIDX, K_AVAIL, K_HOLDS = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_EXPIRY, K_CONFIRMING, K_BUYERS = KEYS[5], KEYS[6], KEYS[7]
local PREFIX = ARGV[1]
local NOW = tonumber(ARGV[2])

local function units_key(code)
  return PREFIX .. 'units:' .. code
end

local function refuse(code, details)
  return cmsgpack.pack({'no', code, details or {}})
end

local function answer(h)
  return cmsgpack.pack({'ok', h})
end

local function bump()
  redis.call('HINCRBY', K_COUNTS, 'version', 1)
end

local function load_hold(id)
  local raw = redis.call('HGET', K_HOLDS, id)
  if not raw then
    return nil
  end
  return cmsgpack.unpack(raw)
end

local function save_hold(id, h)
  redis.call('HSET', K_HOLDS, id, cmsgpack.pack(h))
end

-- A held hold gives back its seats or units and its buyer's count, and ends as `how`.
local function end_hold(id, h, how)
  for _, i in ipairs(h.i) do
    redis.call('SETBIT', K_AVAIL, i, 1)
  end
  if #h.i > 0 then
    redis.call('HINCRBY', K_COUNTS, 'seats_held', -#h.i)
  end
  if #h.u > 0 then
    redis.call('RPUSH', units_key(h.t), unpack(h.u))
    redis.call('HINCRBY', K_COUNTS, 'a:' .. h.t, #h.u)
    redis.call('HINCRBY', K_COUNTS, 'h:' .. h.t, -#h.u)
  end
  if redis.call('HINCRBY', K_BUYERS, h.b, -h.q) <= 0 then
    redis.call('HDEL', K_BUYERS, h.b)
  end
  redis.call('ZREM', K_EXPIRY, id)
  h.st = how
  save_hold(id, h)
end

-- Expire at most `max` due holds (expires_at <= now), oldest first, so no decision is made on a dead hold.
local function drain(max)
  local due = redis.call('ZRANGEBYSCORE', K_EXPIRY, '-inf', NOW, 'LIMIT', 0, max)
  for _, id in ipairs(due) do
    local h = load_hold(id)
    if h and h.st == 'held' then
      end_hold(id, h, 'expired')
    else
      redis.call('ZREM', K_EXPIRY, id)
    end
  end
  if #due > 0 then
    bump()
  end
end


-- The hold a release or confirm acts on, after draining at most `drain_max` due holds: the hold, or nil and the
-- refusal to answer. A held hold past its expiry is expired here, so it is never released or confirmed late.
local function hold_to_end(id, drain_max)
  drain(drain_max)
  local h = load_hold(id)
  if not h then
    return nil, refuse('hold_not_found')
  end
  if h.st == 'held' and h.x <= NOW then
    end_hold(id, h, 'expired')
    bump()
    return nil, refuse('hold_expired')
  end
  return h
end
