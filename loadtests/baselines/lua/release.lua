-- ARGV[3] hold id, [4] due holds drained at most.
local id = ARGV[3]
local h, refusal = hold_to_end(id, tonumber(ARGV[4]))
if not h then
  return refusal
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
