-- ARGV[3] hold id, [4] order_ref, [5] lease deadline, [6] due holds drained at most.
-- A held hold becomes 'confirming': expiry no longer reclaims it while its sale is written to Postgres.
local id, order_ref = ARGV[3], ARGV[4]
local h, refusal = hold_to_end(id, tonumber(ARGV[6]))
if not h then
  return refusal
end
if h.st == 'sold' then
  if h.o ~= order_ref then
    return refuse('sold_elsewhere')
  end
  return answer(h)
end
if h.st == 'expired' then
  return refuse('hold_expired')
end
if h.st ~= 'held' then
  return refuse(h.st)  -- released, or confirming
end
h.st = 'confirming'
h.o = order_ref
redis.call('ZREM', K_EXPIRY, id)
redis.call('ZADD', K_CONFIRMING, tonumber(ARGV[5]), id)
save_hold(id, h)
return answer(h)
