-- ARGV[3] hold id, [4] the extension's ttl (s), [5] due holds drained at most.
-- Checkout keeps a live hold for its payment window: its expiry becomes max(expires_at, now + ttl), so an
-- extension never shortens a hold (as the engine's ExtendHold).
local id = ARGV[3]
local h, refusal = hold_to_end(id, tonumber(ARGV[5]))
if not h then
  return refusal
end
if h.st == 'expired' then
  return refuse('hold_expired')
end
if h.st == 'sold' then
  return refuse('sold_not_extendable')
end
if h.st ~= 'held' then
  return refuse(h.st)  -- released, or confirming (a confirm in flight)
end
local expires_at = NOW + tonumber(ARGV[4])
if expires_at > h.x then
  h.x = expires_at
  redis.call('ZADD', K_EXPIRY, expires_at, id)
  save_hold(id, h)
end
return answer(h)
