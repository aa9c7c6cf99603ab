package session

import "github.com/theaterscriptpro/tsp/redisx"

// The Lua scripts below are the whole of the store's logic on the Redis
// side. Each runs atomically, so between any two of them a session is
// either fully there or fully gone: a slow request cannot write into a
// session that another request deleted, rotated or revoked.
//
// Keys, all under the user's hash tag {uid}, so a script touches one
// Redis Cluster slot (h is the base64url SHA-256 of the token's secret):
//
//	session:{uid}:<h>      string, the session (format below); TTL = idle expiry
//	sessions:user:{uid}    sorted set of "<id>:<h>" scored by idle expiry
//	                       (ms); TTL = its latest score
//	sessions:epoch:{uid}   revocation counter; TTL >= the longest remaining
//	                       life of a session born in it
//
// A session is one string, "1|ca|ls|ie|ae|ep|v|id|data": format version 1,
// created, last seen, idle and absolute expiry (ms), epoch, version, public
// id, then the data (email, role, user agent, IP, attributes) as JSON that
// only Go reads. The scripts parse the numeric header and never the data.
// A string stays compact whatever the data holds (a hash turns into a
// hashtable, twice the memory, once one value passes 64 bytes, as a user
// agent usually does); the index member "<id>:<h>" is 60 bytes so the
// sorted set stays a listpack too.
//
// Scripts that reach sessions through the index (evict, DeleteAll,
// DeleteByID, List) build their keys as ARGV prefix .. h: the prefix
// carries the same hash tag, so those keys are on the slot of the declared
// ones, which Redis Cluster allows.
//
// Time: ARGV[1] is "0" in production and the script reads Redis TIME, so
// instances with skewed clocks agree; a test's Config.Now passes its time
// in milliseconds instead. Every TTL is set relative to that time, so a
// test clock and the real one never mix.
const luaPrelude = `
local function clock(a)
  local n = tonumber(a)
  if n and n > 0 then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- ms formats a millisecond count as an integer string (never 1.7e+12).
local function ms(n) return string.format('%.0f', n) end

-- parse reads a session value; nil for none or a value it cannot read
-- (which then counts as dead).
local function parse(v)
  if not v then return nil end
  local ca, ls, ie, ae, ep, ver, id, pos =
    string.match(v, '^1|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|([%w_%-]+)|()')
  if not pos then return nil end
  return {ca = tonumber(ca), ls = tonumber(ls), ie = tonumber(ie), ae = tonumber(ae),
    ep = tonumber(ep), v = tonumber(ver), id = id, data = string.sub(v, pos)}
end

local function format(s)
  return '1|' .. ms(s.ca) .. '|' .. ms(s.ls) .. '|' .. ms(s.ie) .. '|' .. ms(s.ae) .. '|' ..
    ms(s.ep) .. '|' .. ms(s.v) .. '|' .. s.id .. '|' .. s.data
end

-- load returns the raw value and the parsed session of key k.
local function load(k)
  local v = redis.call('GET', k)
  return v, parse(v)
end

-- epoch: the user's revocation epoch; no key means epoch 0.
local function epoch(k) return tonumber(redis.call('GET', k) or '0') end

-- alive: a session lives while now is before its idle and its absolute
-- expiry and it was born in the user's current epoch.
local function alive(s, now, ep)
  return s ~= nil and now < s.ie and now < s.ae and s.ep == ep
end

-- prune drops index entries whose idle expiry has passed (their session
-- keys expire by TTL on their own) and returns how many.
local function prune(idx, now)
  return redis.call('ZREMRANGEBYSCORE', idx, '-inf', ms(now))
end

-- fit gives the index the TTL of its latest entry, so it never outlives
-- the sessions it lists; an index with no future entry is deleted.
local function fit(idx, now)
  local last = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
  if #last == 0 then return end
  local ttl = tonumber(last[2]) - now
  if ttl > 0 then redis.call('PEXPIRE', idx, ms(ttl)) else redis.call('DEL', idx) end
end

-- hashOf returns the secret hash of an index member "<id>:<h>".
local function hashOf(m) return string.match(m, ':([%w_%-]+)$') end
`

func script(body string) *redisx.Script { return redisx.NewScript(luaPrelude + body) }

// loadScript is Get (ARGV[3] "0") and Touch ("1") in one round trip.
// KEYS: session, index, epoch. ARGV: now, h, touch, interval ms, idle ms.
// Returns {value, wrote}, nil for no session, or 0 for a dead one it
// deleted.
var loadScript = script(`
local now = clock(ARGV[1])
local v, s = load(KEYS[1])
local pruned = prune(KEYS[2], now)
if not alive(s, now, epoch(KEYS[3])) then
  -- Dead (expired by our clock, or revoked by an epoch bump): remove it
  -- now, so nothing can read it again, not even before its TTL fires.
  if v then
    redis.call('DEL', KEYS[1])
    if s then redis.call('ZREM', KEYS[2], s.id .. ':' .. ARGV[2]) end
    fit(KEYS[2], now)
    -- 0, not nil: the caller deleted a key it may hold a local copy of.
    return 0
  end
  if pruned > 0 then fit(KEYS[2], now) end
  return false
end
local wrote = 0
-- Activity writes only when the last write is at least one interval old:
-- most lookups are a pure read.
if ARGV[3] == '1' and now - s.ls >= tonumber(ARGV[4]) then
  -- The idle expiry moves forward, never past the absolute one.
  s.ls, s.ie = now, math.min(now + tonumber(ARGV[5]), s.ae)
  v = format(s)
  redis.call('SET', KEYS[1], v, 'PX', ms(s.ie - now))
  -- ZADD (not XX) also puts back an entry the index lost.
  redis.call('ZADD', KEYS[2], ms(s.ie), s.id .. ':' .. ARGV[2])
  wrote = 1
end
if wrote == 1 or pruned > 0 then fit(KEYS[2], now) end
return {v, wrote}
`)

// createScript stores a new session, making room first.
// KEYS: session, index, epoch. ARGV: now, h, idle ms, absolute ms,
// max per user, session key prefix, id, data.
// Returns {created ms, evicted, evicted hashes...}.
var createScript = script(`
local now = clock(ARGV[1])
-- A 256-bit secret never repeats; if it ever did, refuse rather than
-- hand one session to two devices.
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('ERR session exists') end
prune(KEYS[2], now)
-- Make room: end the sessions nearest their idle expiry (least recently
-- used) until one more fits under the limit.
local evicted, gone = 0, {}
while redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) do
  local m = redis.call('ZPOPMIN', KEYS[2])
  local h = hashOf(m[1])
  if h then
    redis.call('DEL', ARGV[6] .. h)
    gone[#gone + 1] = h
  end
  evicted = evicted + 1
end
local ep = epoch(KEYS[3])
local ae = now + tonumber(ARGV[4])
local s = {ca = now, ls = now, ie = math.min(now + tonumber(ARGV[3]), ae), ae = ae,
  ep = ep, v = 0, id = ARGV[7], data = ARGV[8]}
redis.call('SET', KEYS[1], format(s), 'PX', ms(s.ie - now))
redis.call('ZADD', KEYS[2], ms(s.ie), s.id .. ':' .. ARGV[2])
fit(KEYS[2], now)
-- A session born after a revocation needs the epoch key as long as it may
-- live: if the key expired first, the epoch would read 0 and end it.
if ep > 0 and redis.call('PTTL', KEYS[3]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
-- The evicted hashes let the caller drop its local copies of them.
local out = {ms(now), evicted}
for _, h in ipairs(gone) do out[#out + 1] = h end
return out
`)

// updateScript is the compare-and-set write of Update.
// KEYS: session, epoch. ARGV: now, version read, data.
// Returns 1 done, 0 changed since read (retry), -1 no live session.
var updateScript = script(`
local now = clock(ARGV[1])
local _, s = load(KEYS[1])
-- Never write into a session that is gone: SET would recreate it.
if not alive(s, now, epoch(KEYS[2])) then return -1 end
if ms(s.v) ~= ARGV[2] then return 0 end
s.v, s.data = s.v + 1, ARGV[3]
redis.call('SET', KEYS[1], format(s), 'KEEPTTL')
return 1
`)

// deleteScript ends one session by token.
// KEYS: session, index. ARGV: now, h. Returns 1 if it existed.
var deleteScript = script(`
local now = clock(ARGV[1])
local _, s = load(KEYS[1])
local n = redis.call('DEL', KEYS[1])
if s then redis.call('ZREM', KEYS[2], s.id .. ':' .. ARGV[2]) end
prune(KEYS[2], now)
fit(KEYS[2], now)
return n
`)

// rotateScript moves a live session to a new token in one step.
// KEYS: old session, new session, index, epoch. ARGV: now, old h, new h,
// idle ms. Returns {value, 1} of the new session, or nil.
var rotateScript = script(`
local now = clock(ARGV[1])
local v, s = load(KEYS[1])
if not alive(s, now, epoch(KEYS[4])) then
  if v then
    redis.call('DEL', KEYS[1])
    if s then redis.call('ZREM', KEYS[3], s.id .. ':' .. ARGV[2]) end
  end
  return false
end
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.error_reply('ERR session exists') end
-- Same id, creation, absolute expiry, epoch and data under the new key;
-- the old key goes in the same step, so exactly one token works at any
-- instant. Rotation is activity: the idle expiry moves, never past the
-- absolute one.
s.ls, s.ie = now, math.min(now + tonumber(ARGV[4]), s.ae)
v = format(s)
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], v, 'PX', ms(s.ie - now))
redis.call('ZREM', KEYS[3], s.id .. ':' .. ARGV[2])
redis.call('ZADD', KEYS[3], ms(s.ie), s.id .. ':' .. ARGV[3])
prune(KEYS[3], now)
fit(KEYS[3], now)
return {v, 1}
`)

// deleteAllScript revokes every session of a user but one.
// KEYS: index, epoch[, session to keep]. ARGV: now, session key prefix,
// h to keep ("" for none), absolute ms. Returns how many ended.
var deleteAllScript = script(`
local now = clock(ARGV[1])
local old = epoch(KEYS[2])
-- Bump the epoch first: every session born before it is dead from now on,
-- including any the index failed to list.
local ep = redis.call('INCR', KEYS[2])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
-- The kept session (sign out everywhere else) moves to the new epoch if it
-- was alive in the old one; it is put (back) in the index.
local kept = nil
if KEYS[3] then
  local _, s = load(KEYS[3])
  if alive(s, now, old) then
    s.ep = ep
    redis.call('SET', KEYS[3], format(s), 'KEEPTTL')
    kept = s.id .. ':' .. ARGV[3]
    redis.call('ZADD', KEYS[1], ms(s.ie), kept)
  end
end
local n = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if m ~= kept then
    local h = hashOf(m)
    if h then n = n + redis.call('DEL', ARGV[2] .. h) end
    redis.call('ZREM', KEYS[1], m)
  end
end
prune(KEYS[1], now)
fit(KEYS[1], now)
return n
`)

// deleteByIDScript ends the session with a public id.
// KEYS: index. ARGV: now, session key prefix, id. Returns the hashes of
// the sessions it deleted (none or one), so the caller can drop its local
// copies.
var deleteByIDScript = script(`
local now = clock(ARGV[1])
prune(KEYS[1], now)
local want = ARGV[3] .. ':'
local gone = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(m, 1, #want) == want then
    local h = hashOf(m)
    if h and redis.call('DEL', ARGV[2] .. h) == 1 then gone[#gone + 1] = h end
    redis.call('ZREM', KEYS[1], m)
  end
end
fit(KEYS[1], now)
return gone
`)

// listScript returns the values of every live session of a user and
// drops what is dead from the index (and Redis) on the way.
// KEYS: index, epoch. ARGV: now, session key prefix.
var listScript = script(`
local now = clock(ARGV[1])
local ep = epoch(KEYS[2])
local changed = prune(KEYS[1], now)
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = hashOf(m)
  local v, s = nil, nil
  if h then v, s = load(ARGV[2] .. h) end
  if alive(s, now, ep) then
    out[#out + 1] = v
  else
    if v then redis.call('DEL', ARGV[2] .. h) end
    redis.call('ZREM', KEYS[1], m)
    changed = changed + 1
  end
end
if changed > 0 then fit(KEYS[1], now) end
return out
`)
