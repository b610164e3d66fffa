-- ARGV[3] hold id, [4] buyer, [5] expires_at, [6] max tickets per buyer, [7] ticket type (the seated type for
-- seats), [8] quantity (0 for seats), [9] due holds drained at most, [10..] seat ids.
local id, buyer, code = ARGV[3], ARGV[4], ARGV[7]
local limit, quantity = tonumber(ARGV[6]), tonumber(ARGV[8])
drain(tonumber(ARGV[9]))
local existing = load_hold(id)
if existing then
  if existing.b ~= buyer then
    return refuse('hold_id_taken')
  end
  return answer(existing)
end

local seats = {}
for k = 10, #ARGV do
  seats[#seats + 1] = ARGV[k]
end
local held_or_bought = tonumber(redis.call('HGET', K_BUYERS, buyer) or '0')
local function over_limit(requested)
  if held_or_bought + requested <= limit then
    return nil
  end
  return refuse('buyer_limit_exceeded', {limit = limit, held_or_bought = held_or_bought, requested = requested})
end

local h = {b = buyer, s = seats, i = {}, t = code, q = quantity, u = {}, x = tonumber(ARGV[5]), st = 'held', o = ''}
if #seats > 0 then
  local found = redis.call('HMGET', K_SEATIDX, unpack(seats))
  local unknown, taken = {}, {}
  for k, v in ipairs(found) do
    if not v then
      unknown[#unknown + 1] = seats[k]
    end
  end
  if #unknown > 0 then
    return refuse('unknown_seats', {seats = unknown})
  end
  local refusal = over_limit(#seats)
  if refusal then
    return refusal
  end
  for k, v in ipairs(found) do
    h.i[k] = tonumber(v)
    if redis.call('GETBIT', K_AVAIL, h.i[k]) == 0 then
      taken[#taken + 1] = seats[k]
    end
  end
  if #taken > 0 then
    return refuse('seats_unavailable', {seats = taken})
  end
  for _, i in ipairs(h.i) do
    redis.call('SETBIT', K_AVAIL, i, 0)
  end
  h.q = #seats
  redis.call('HINCRBY', K_COUNTS, 'seats_held', #seats)
else
  local available = redis.call('HGET', K_COUNTS, 'a:' .. code)
  if not available then
    return refuse('unknown_ticket_type', {ticket_type = code})
  end
  local refusal = over_limit(quantity)
  if refusal then
    return refusal
  end
  if quantity > tonumber(available) then
    return refuse('insufficient_inventory', {ticket_type = code, available = tonumber(available)})
  end
  -- freed units first, then fresh ones from the type's counter: every unit stays in 1..capacity
  local reused = redis.call('RPOP', units_key(code), quantity) or {}
  for _, unit in ipairs(reused) do
    h.u[#h.u + 1] = tonumber(unit)
  end
  local fresh = quantity - #h.u
  if fresh > 0 then
    local last = redis.call('HINCRBY', K_COUNTS, 'n:' .. code, fresh)
    for unit = last - fresh + 1, last do
      h.u[#h.u + 1] = unit
    end
  end
  redis.call('HINCRBY', K_COUNTS, 'a:' .. code, -quantity)
  redis.call('HINCRBY', K_COUNTS, 'h:' .. code, quantity)
end
redis.call('HINCRBY', K_BUYERS, buyer, h.q)
redis.call('ZADD', K_EXPIRY, h.x, id)
save_hold(id, h)
bump()
return answer(h)
