-- ARGV[3] hold id, [4] due holds drained at most.
local id = ARGV[3]
drain(tonumber(ARGV[4]))
local h = load_hold(id)
if not h then
  return refuse('hold_not_found')
end
if h.st == 'held' and h.x <= NOW then
  end_hold(id, h, 'expired')
  bump()
  return refuse('hold_expired')
end
if h.st == 'held' then
  end_hold(id, h, 'released')
  bump()
  return answer(h)
end
if h.st == 'released' then
  return answer(h)  -- a repeated release answers as the first did
end
if h.st == 'expired' then
  return refuse('hold_expired')
end
return refuse(h.st)  -- sold, or confirming (a confirm in flight)
