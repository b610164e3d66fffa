-- ARGV[3] hold id, [4] outcome 'sold' or 'held', [5] the sale's order_ref in Postgres (when sold).
-- Ends a confirm: sold after the Postgres commit, or held again when nothing reached Postgres.
local id, outcome = ARGV[3], ARGV[4]
local h = load_hold(id)
if not h then
  return refuse('hold_not_found')
end
if h.st ~= 'confirming' then
  return answer(h)  -- already ended (the sweeper resolved an expired lease)
end
redis.call('ZREM', K_CONFIRMING, id)
if outcome == 'sold' then
  h.st = 'sold'
  h.o = ARGV[5]
  if #h.i > 0 then
    redis.call('HINCRBY', K_COUNTS, 'seats_held', -#h.i)
    redis.call('HINCRBY', K_COUNTS, 'seats_sold', #h.i)
  end
  if #h.u > 0 then
    redis.call('HINCRBY', K_COUNTS, 'h:' .. h.t, -#h.u)
    redis.call('HINCRBY', K_COUNTS, 's:' .. h.t, #h.u)
  end
else
  h.st = 'held'
  h.o = ''
  redis.call('ZADD', K_EXPIRY, h.x, id)  -- past its time, the next drain reclaims it
end
save_hold(id, h)
bump()
return answer(h)
