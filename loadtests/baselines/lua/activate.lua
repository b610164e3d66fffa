-- ARGV[3] org id, [4] availability bitmap (all seats available), [5] msgpack seat ids in index order,
-- [6] seated type code ('' for none), [7] msgpack [[code, capacity], ...] GA types in position order.
-- Idempotent: an event already activated is left as it is.
if redis.call('EXISTS', K_COUNTS) == 1 then
  return 0
end
local seat_ids = cmsgpack.unpack(ARGV[5])
local chunk = {}
for k, seat_id in ipairs(seat_ids) do
  chunk[#chunk + 1] = seat_id
  chunk[#chunk + 1] = k - 1
  if #chunk >= 1000 then
    redis.call('HSET', K_SEATIDX, unpack(chunk))
    chunk = {}
  end
end
if #chunk > 0 then
  redis.call('HSET', K_SEATIDX, unpack(chunk))
end
redis.call('SET', K_AVAIL, ARGV[4])
redis.call('HSET', K_COUNTS, 'org_id', ARGV[3], 'version', 1, 'seats_total', #seat_ids, 'seats_held', 0,
  'seats_sold', 0, 'seated_type', ARGV[6], 'ga_types', ARGV[7])
for _, ga in ipairs(cmsgpack.unpack(ARGV[7])) do
  local code, capacity = ga[1], ga[2]
  redis.call('HSET', K_COUNTS, 'c:' .. code, capacity, 'a:' .. code, capacity, 'h:' .. code, 0,
    's:' .. code, 0, 'n:' .. code, 0)
end
return 1
