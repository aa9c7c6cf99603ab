package ratelimit

import "github.com/theaterscriptpro/tsp/redisx"

// The decision scripts share one calling convention, so the Go side builds
// their arguments in one place:
//
//	KEYS[i]       the key of policy i; all keys of one call share a hash tag
//	ARGV[1]       cost (0 only reports the state, never writes)
//	ARGV[2]       "1" to charge a refused request too
//	ARGV[3]       "0": take the time from Redis TIME (always, in production);
//	              otherwise microseconds, set only by this package's tests
//	ARGV[4]       nonce naming sliding-log entries (unused by the others)
//	ARGV[3i+2..]  three numbers per policy i, by algorithm:
//	              sliding window: limit, window µs, bucket width µs
//	              sliding log:    limit, window µs, 0
//	              GCRA:           burst, window µs, emission interval µs
//
// and return one flat array of integers:
//
//	{now µs, allowed 1|0, then per policy: remaining, reset µs, retry µs}
//
// where reset is the time until the policy's quota is whole again and retry,
// non-zero only for a policy that refused, the time until a request of the
// same cost would fit if nothing else were admitted meanwhile. Times are
// integers of microseconds; Lua numbers are doubles, exact to 2^53, and
// Unix time in µs is about 2^51. Numbers are formatted with %.0f where they
// become strings, because Lua's tostring would round them to 14 digits.
//
// The refund scripts take ARGV[1] cost, ARGV[2] the µs time of the charge,
// ARGV[3] the time override, ARGV[4] the nonce, and the same policy numbers.

// luaNow is the prologue every script starts with.
const luaNow = `
local cost = tonumber(ARGV[1])
local charge_refused = ARGV[2] == '1'
local now = tonumber(ARGV[3])
if now == 0 then
  -- Redis's clock, never the app's: instances with skewed clocks agree, and
  -- TIME only moves forward on one server.
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local n = #KEYS
`

// slidingScript decides with a hash of time buckets per policy: field =
// bucket number (time / width), value = units charged in that bucket.
// Every bucket that overlaps the trailing window (now − window, now] is
// counted whole. That over-counts the oldest bucket a little (the utility
// cost, at most one bucket in window/width + 1) but means that, whenever a
// request is admitted, everything admitted in any window of length `window`
// ending at or after it was counted, so no such window ever holds more
// than the limit.
var slidingScript = redisx.NewScript(luaNow + slidingCount + `
-- An ordinary decision charges exactly its cost.
local extra = 0
` + slidingCharge + `
return out
`)

// slidingCount is the first half of a sliding-window decision: it sums the
// buckets of each policy that overlap the trailing window and decides
// whether cost fits every policy (fits), leaving sums[i] and lists[i].
const slidingCount = `
local sums, lists, fits = {}, {}, true
for i = 1, n do
  local limit = tonumber(ARGV[3*i+2])
  local window = tonumber(ARGV[3*i+3])
  local width = tonumber(ARGV[3*i+4])
  -- The oldest bucket that still overlaps (now - window, now].
  local oldest = math.floor((now - window) / width)
  local h = redis.call('HGETALL', KEYS[i])
  local sum, list, stale = 0, {}, {}
  for j = 1, #h, 2 do
    local b = tonumber(h[j])
    if b < oldest then
      stale[#stale + 1] = h[j]
    else
      local c = tonumber(h[j + 1])
      sum = sum + c
      list[#list + 1] = {b, c}
    end
  end
  -- Drop buckets no current or future window overlaps, so the hash never
  -- holds more than window/width + 2 fields. HDEL keeps the key's TTL.
  if #stale > 0 then
    redis.call('HDEL', KEYS[i], unpack(stale))
  end
  sums[i], lists[i] = sum, list
  if sum + cost > limit then
    fits = false
  end
end
`

// slidingCharge is the second half: it charges cost + extra (extra, the
// units of a lease, is 0 unless the request fits) to the current bucket of
// every policy or to none, and builds the reply in out.
const slidingCharge = `
-- Charge every policy or none, so a request refused by the daily policy
-- does not use up the per-minute one (unless refused requests are charged).
local write = cost > 0 and (fits or charge_refused)
local out = {now, fits and 1 or 0}
for i = 1, n do
  local limit = tonumber(ARGV[3*i+2])
  local window = tonumber(ARGV[3*i+3])
  local width = tonumber(ARGV[3*i+4])
  local cur = math.floor(now / width)
  local sum, list = sums[i], lists[i]
  if write then
    redis.call('HINCRBY', KEYS[i], string.format('%.0f', cur), cost + extra)
    -- The current bucket is counted until (cur + 1)·width + window; the
    -- key must live exactly that long, set at every write.
    redis.call('PEXPIRE', KEYS[i], math.ceil(((cur + 1) * width + window - now) / 1000))
    sum = sum + cost + extra
    list[#list + 1] = {cur, cost + extra}
  end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  -- Whole again when the newest bucket stops overlapping the window.
  local reset = 0
  if #list > 0 then
    reset = (list[#list][1] + 1) * width + window - now
  end
  -- A refusing policy admits this cost again once enough of its oldest
  -- buckets have left the window: bucket b leaves at (b + 1)·width + window.
  local retry = 0
  local excess = sum + cost - limit
  if excess > 0 and not (fits and write) then
    local acc = 0
    for j = 1, #list do
      acc = acc + list[j][2]
      if acc >= excess then
        retry = (list[j][1] + 1) * width + window - now
        break
      end
    end
  end
  local remaining = limit - sum
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = reset
  out[#out + 1] = retry
end
`

// slidingRefund gives back the units a decision charged to its bucket, for
// "skip successful" and "skip failed". A bucket that has already left the
// window, or was already emptied, is left alone: a refund never drives a
// count below what was charged by others.
var slidingRefund = redisx.NewScript(luaNow + `
local charged = tonumber(ARGV[2])
for i = 1, n do
  local width = tonumber(ARGV[3*i+4])
  local field = string.format('%.0f', math.floor(charged / width))
  local v = tonumber(redis.call('HGET', KEYS[i], field))
  if v ~= nil and v >= cost then
    if v == cost then
      -- The last units of the bucket: remove the field (and the key with
      -- it if it was the only one), never leave a zero behind.
      redis.call('HDEL', KEYS[i], field)
    else
      -- HINCRBY keeps the TTL the charge set.
      redis.call('HINCRBY', KEYS[i], field, -cost)
    end
  end
end
return 1
`)

// slidingLeaseScript is slidingScript for a limiter that leases (lease.go):
// the same decision on the same keys, in the same one call, which also
//
//  1. gives back first what this instance did not spend of its previous
//     lease (piggybacked here instead of costing a round trip of its own);
//  2. when the request fits, reserves `extra` more units, charged to the
//     current bucket like the request itself, for this instance to spend
//     locally until that bucket ends.
//
// It takes six more arguments after the policies' (n policies):
//
//	ARGV[3n+5]  the key's rate as this instance sees it, units per second
//	ARGV[3n+6]  the safety margin before the bucket's end, µs
//	ARGV[3n+7]  the most units one lease may hold (the request's included)
//	ARGV[3n+8]  the share divisor, 2 × instances
//	ARGV[3n+9]  units to give back (0: none)
//	ARGV[3n+10] the µs time those units were granted (their bucket)
//
// and replies with slidingScript's array followed by extra.
var slidingLeaseScript = redisx.NewScript(luaNow + `
local rate = tonumber(ARGV[3*n+5])
local margin = tonumber(ARGV[3*n+6])
local max_batch = tonumber(ARGV[3*n+7])
local divisor = tonumber(ARGV[3*n+8])
local ret = tonumber(ARGV[3*n+9])
local ret_at = tonumber(ARGV[3*n+10])

-- 1. The return, before counting: what the previous lease did not spend
-- goes back to the bucket it was charged to, exactly as slidingRefund does
-- (never below zero: a bucket emptied by Reset is left alone).
if ret > 0 then
  for i = 1, n do
    local width = tonumber(ARGV[3*i+4])
    local field = string.format('%.0f', math.floor(ret_at / width))
    local v = tonumber(redis.call('HGET', KEYS[i], field))
    if v ~= nil and v >= ret then
      if v == ret then
        redis.call('HDEL', KEYS[i], field)
      else
        redis.call('HINCRBY', KEYS[i], field, -ret)
      end
    end
  end
end
` + slidingCount + `
-- 2. The lease. Units leased now may be spent only until the current
-- bucket of every policy ends (spent later, they would fall in a bucket
-- the check above did not charge), less the margin; so ask for what the
-- key's rate will use in that span, on Redis's clock. Never more than a
-- 1/divisor share of what the tightest policy has left after this request,
-- so that instances leasing one key at equal demand get equal shares and
-- the last units of a window are not hoarded by one of them.
local extra = 0
if fits and cost > 0 then
  local stop = nil
  local room = nil
  for i = 1, n do
    local width = tonumber(ARGV[3*i+4])
    local e = (math.floor(now / width) + 1) * width
    if stop == nil or e < stop then stop = e end
    local left = tonumber(ARGV[3*i+2]) - sums[i] - cost
    if room == nil or left < room then room = left end
  end
  local span = stop - margin - now
  if span > 0 then
    extra = math.floor(rate * span / 1000000)
    extra = math.min(extra, max_batch - cost, math.floor(room / divisor))
    if extra < 0 then extra = 0 end
  end
end
` + slidingCharge + `
out[#out + 1] = extra
return out
`)

// logScript is the exact sliding log: one sorted-set entry per admitted unit,
// scored by its time. It is exact (no bucket rounding) and costs memory
// linear in the limit, so New allows it only for small limits.
var logScript = redisx.NewScript(luaNow + `
local counts, fits = {}, true
for i = 1, n do
  local limit = tonumber(ARGV[3*i+2])
  local window = tonumber(ARGV[3*i+3])
  -- Entries at or before now - window are in no window that contains now.
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', string.format('%.0f', now - window))
  counts[i] = redis.call('ZCARD', KEYS[i])
  if counts[i] + cost > limit then
    fits = false
  end
end

local write = cost > 0 and (fits or charge_refused)
local out = {now, fits and 1 or 0}
local score = string.format('%.0f', now)
for i = 1, n do
  local limit = tonumber(ARGV[3*i+2])
  local window = tonumber(ARGV[3*i+3])
  local count = counts[i]
  if write then
    -- One entry per unit, named by the caller's random nonce so a refund
    -- can remove exactly these entries.
    for j = 1, cost do
      redis.call('ZADD', KEYS[i], score, ARGV[4] .. ':' .. j)
    end
    count = count + cost
    if count > limit then
      -- A charged refusal keeps only the newest limit entries: the client
      -- stays blocked for a window after it stops, and memory stays bounded.
      redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -(limit + 1))
      count = limit
    end
    -- The newest entry leaves the window after window µs.
    redis.call('PEXPIRE', KEYS[i], math.ceil(window / 1000))
  end
  local reset = 0
  if count > 0 then
    local newest = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
    reset = tonumber(newest[2]) + window - now
  end
  -- A refusing policy admits this cost once its excess oldest entries
  -- have left the window; the excess-th oldest leaves at score + window.
  local retry = 0
  local excess = count + cost - limit
  if excess > 0 and not (fits and write) then
    local e = redis.call('ZRANGE', KEYS[i], excess - 1, excess - 1, 'WITHSCORES')
    if e[2] then
      retry = tonumber(e[2]) + window - now
    end
  end
  local remaining = limit - count
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = reset
  out[#out + 1] = retry
end
return out
`)

// logRefund removes the entries a decision added; ZREM keeps the TTL.
var logRefund = redisx.NewScript(luaNow + `
for i = 1, n do
  for j = 1, cost do
    redis.call('ZREM', KEYS[i], ARGV[4] .. ':' .. j)
  end
end
return 1
`)

// gcraScript is the generic cell rate algorithm: one integer per policy,
// the theoretical arrival time (TAT) in µs: when the policy would be whole
// again. Each unit moves TAT an emission interval T later; a request fits
// while its new TAT is at most burst·T ahead of now. So Burst units pass at
// once and then one per T, and any window of length `window` admits at most
// limit + burst − 1 units. T is a whole number of µs (rounded up), so the
// arithmetic is exact and the rate never exceeds the nominal one.
var gcraScript = redisx.NewScript(luaNow + `
local tats, fits = {}, true
for i = 1, n do
  local burst = tonumber(ARGV[3*i+2])
  local interval = tonumber(ARGV[3*i+4])
  -- A missing key or a TAT in the past both mean "whole": start from now.
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  tats[i] = tat
  if tat + cost * interval - now > burst * interval then
    fits = false
  end
end

local write = cost > 0 and (fits or charge_refused)
local out = {now, fits and 1 or 0}
for i = 1, n do
  local burst = tonumber(ARGV[3*i+2])
  local window = tonumber(ARGV[3*i+3])
  local interval = tonumber(ARGV[3*i+4])
  local tat = tats[i]
  if write then
    tat = tat + cost * interval
    -- A charged refusal may push TAT past a full burst, but never more
    -- than one window past it, so the debt a flood builds is bounded.
    local cap = now + burst * interval + window
    if tat > cap then tat = cap end
    -- The key matters only until TAT: that is its TTL, set at every write.
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
  end
  local ahead = tat - now
  local retry = 0
  if not (fits and write) and ahead + cost * interval > burst * interval then
    retry = ahead + cost * interval - burst * interval
  end
  local remaining = math.floor((burst * interval - ahead) / interval)
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = ahead
  out[#out + 1] = retry
end
return out
`)

// gcraRefund moves TAT back by the refunded units, never before now.
var gcraRefund = redisx.NewScript(luaNow + `
for i = 1, n do
  local interval = tonumber(ARGV[3*i+4])
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat ~= nil then
    tat = tat - cost * interval
    if tat <= now then
      -- Nothing left to remember: whole again.
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
    end
  end
end
return 1
`)
