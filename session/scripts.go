package session

import "github.com/theaterscriptpro/tsp/redisx"

// The Lua scripts below are the whole of the store's logic on the Redis
// side. Each runs atomically, so between any two of them a session is
// either fully there or fully gone: a slow request cannot write into a
// session that another request deleted, rotated or revoked.
//
// Keys, all under the user's hash tag {uid}, so a script touches one
// Redis Cluster slot:
//
//	session:{uid}:<sha256hex(secret)>  hash, the session; TTL = idle expiry
//	sessions:user:{uid}                sorted set "<id>:<sha256hex>" scored by
//	                                   idle expiry (ms); TTL = its latest score
//	sessions:epoch:{uid}               revocation counter; TTL >= the longest
//	                                   remaining life of a session born in it
//
// Scripts that reach sessions through the index (evict, DeleteAll,
// DeleteByID, List) build their keys as ARGV prefix .. hash: the prefix
// carries the same hash tag, so those keys are on the slot of the declared
// ones, which Redis Cluster allows.
//
// Time: ARGV[1] is "0" in production and the script reads Redis TIME, so
// instances with skewed clocks agree; a test's Config.Now passes its time
// in milliseconds instead. Every TTL is set relative to that time, so a
// test clock and the real one never mix.
//
// Session hash fields; hmget returns them in this order (Go: field*).
const luaPrelude = `
local FIELDS = {'id', 'em', 'ro', 'ca', 'ls', 'ie', 'ae', 'ua', 'ip', 'ep', 'v', 'at'}
local ID, LS, IE, AE, EP, V = 1, 5, 6, 7, 10, 11

local function clock(a)
  local n = tonumber(a)
  if n and n > 0 then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- ms formats a millisecond count as an integer string (never 1.7e+12).
local function ms(n) return string.format('%.0f', n) end

local function hmget(k) return redis.call('HMGET', k, unpack(FIELDS)) end

-- epoch: the user's revocation epoch; no key means epoch 0.
local function epoch(k) return tonumber(redis.call('GET', k) or '0') end

-- alive: a session lives while now is before its idle and its absolute
-- expiry and it was born in the user's current epoch. A hash missing a
-- field counts as dead.
local function alive(f, now, ep)
  if not f[ID] then return false end
  local ie, ae, e = tonumber(f[IE]), tonumber(f[AE]), tonumber(f[EP])
  return ie ~= nil and ae ~= nil and e ~= nil and now < ie and now < ae and e == ep
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

-- hashOf returns the secret hash of an index member "<id>:<hash>".
local function hashOf(m) return string.match(m, ':(%x+)$') end
`

// Positions in the array hmget returns, and one past it for the extras
// the load and rotate scripts append.
const (
	fieldID = iota
	fieldEmail
	fieldRole
	fieldCreated
	fieldLastSeen
	fieldIdleExp
	fieldAbsExp
	fieldUserAgent
	fieldIP
	fieldEpoch
	fieldVersion
	fieldAttrs
	fieldWrote // appended: 1 if the script wrote (touch or rotate)
	numFields
)

func script(body string) *redisx.Script { return redisx.NewScript(luaPrelude + body) }

// loadScript is Get (ARGV[3] "0") and Touch ("1") in one round trip.
// KEYS: session, index, epoch. ARGV: now, hash, touch, interval ms, idle ms.
var loadScript = script(`
local now = clock(ARGV[1])
local f = hmget(KEYS[1])
local pruned = prune(KEYS[2], now)
if not alive(f, now, epoch(KEYS[3])) then
  -- Dead (expired by our clock, or revoked by an epoch bump): remove it
  -- now, so nothing can read it again, not even before its TTL fires.
  if f[ID] then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[2], f[ID] .. ':' .. ARGV[2])
    pruned = pruned + 1
  end
  if pruned > 0 then fit(KEYS[2], now) end
  return false
end
local wrote = 0
-- Activity writes only when the last write is at least one interval old:
-- most lookups are a pure read.
if ARGV[3] == '1' and now - tonumber(f[LS]) >= tonumber(ARGV[4]) then
  -- The idle expiry moves forward, never past the absolute one.
  local ie = math.min(now + tonumber(ARGV[5]), tonumber(f[AE]))
  f[LS], f[IE] = ms(now), ms(ie)
  redis.call('HSET', KEYS[1], 'ls', f[LS], 'ie', f[IE])
  redis.call('PEXPIRE', KEYS[1], ms(ie - now))
  -- ZADD (not XX) also puts back an entry the index lost.
  redis.call('ZADD', KEYS[2], f[IE], f[ID] .. ':' .. ARGV[2])
  wrote = 1
end
if wrote == 1 or pruned > 0 then fit(KEYS[2], now) end
f[13] = wrote
return f
`)

// createScript stores a new session, making room first.
// KEYS: session, index, epoch. ARGV: now, hash, idle ms, absolute ms,
// max per user, session key prefix, id, email, role, user agent, ip, attrs.
var createScript = script(`
local now = clock(ARGV[1])
-- A 256-bit secret never repeats; if it ever did, refuse rather than
-- hand one session to two devices.
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('ERR session exists') end
prune(KEYS[2], now)
-- Make room: end the sessions nearest their idle expiry (least recently
-- used) until one more fits under the limit.
local evicted = 0
while redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) do
  local m = redis.call('ZPOPMIN', KEYS[2])
  local h = hashOf(m[1])
  if h then redis.call('DEL', ARGV[6] .. h) end
  evicted = evicted + 1
end
local ep = epoch(KEYS[3])
local ae = now + tonumber(ARGV[4])
local ie = math.min(now + tonumber(ARGV[3]), ae)
local h = {'id', ARGV[7], 'ca', ms(now), 'ls', ms(now), 'ie', ms(ie), 'ae', ms(ae), 'ep', ms(ep), 'v', '0'}
-- Empty optional fields are left out: every hash field costs memory.
for i, name in ipairs({'em', 'ro', 'ua', 'ip', 'at'}) do
  local v = ARGV[7 + i]
  if v ~= '' then h[#h + 1] = name; h[#h + 1] = v end
end
redis.call('HSET', KEYS[1], unpack(h))
redis.call('PEXPIRE', KEYS[1], ms(ie - now))
redis.call('ZADD', KEYS[2], ms(ie), ARGV[7] .. ':' .. ARGV[2])
fit(KEYS[2], now)
-- A session born after a revocation needs the epoch key as long as it may
-- live: if the key expired first, the epoch would read 0 and end it.
if ep > 0 and redis.call('PTTL', KEYS[3]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
return {ms(now), evicted}
`)

// updateScript is the compare-and-set write of Update.
// KEYS: session, epoch. ARGV: now, version read, email, role, ua, ip, attrs.
// Returns 1 done, 0 changed since read (retry), -1 no live session.
var updateScript = script(`
local now = clock(ARGV[1])
local f = hmget(KEYS[1])
-- Never write into a session that is gone: HSET would recreate it.
if not alive(f, now, epoch(KEYS[2])) then return -1 end
if f[V] ~= ARGV[2] then return 0 end
local set, del = {}, {}
for i, name in ipairs({'em', 'ro', 'ua', 'ip', 'at'}) do
  local v = ARGV[2 + i]
  if v == '' then del[#del + 1] = name else set[#set + 1] = name; set[#set + 1] = v end
end
if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
redis.call('HINCRBY', KEYS[1], 'v', 1)
return 1
`)

// deleteScript ends one session by token.
// KEYS: session, index. ARGV: now, hash. Returns 1 if it existed.
var deleteScript = script(`
local now = clock(ARGV[1])
local id = redis.call('HGET', KEYS[1], 'id')
local n = redis.call('DEL', KEYS[1])
if id then redis.call('ZREM', KEYS[2], id .. ':' .. ARGV[2]) end
prune(KEYS[2], now)
fit(KEYS[2], now)
return n
`)

// rotateScript moves a live session to a new token in one step.
// KEYS: old session, new session, index, epoch. ARGV: now, old hash,
// new hash, idle ms. Returns the new session's fields, or nil.
var rotateScript = script(`
local now = clock(ARGV[1])
local f = hmget(KEYS[1])
if not alive(f, now, epoch(KEYS[4])) then
  if f[ID] then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[3], f[ID] .. ':' .. ARGV[2])
  end
  return false
end
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.error_reply('ERR session exists') end
-- RENAME moves every field (id, creation, absolute expiry, epoch, data):
-- the old token stops working in the same step the new one starts.
redis.call('RENAME', KEYS[1], KEYS[2])
-- Rotation is activity: the idle expiry moves, never past the absolute.
local ie = math.min(now + tonumber(ARGV[4]), tonumber(f[AE]))
f[LS], f[IE] = ms(now), ms(ie)
redis.call('HSET', KEYS[2], 'ls', f[LS], 'ie', f[IE])
redis.call('PEXPIRE', KEYS[2], ms(ie - now))
redis.call('ZREM', KEYS[3], f[ID] .. ':' .. ARGV[2])
redis.call('ZADD', KEYS[3], f[IE], f[ID] .. ':' .. ARGV[3])
prune(KEYS[3], now)
fit(KEYS[3], now)
f[13] = 1
return f
`)

// deleteAllScript revokes every session of a user but one.
// KEYS: index, epoch[, session to keep]. ARGV: now, session key prefix,
// hash to keep ("" for none), absolute ms. Returns how many ended.
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
  local f = hmget(KEYS[3])
  if alive(f, now, old) then
    redis.call('HSET', KEYS[3], 'ep', ms(ep))
    kept = f[ID] .. ':' .. ARGV[3]
    redis.call('ZADD', KEYS[1], f[IE], kept)
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
// KEYS: index. ARGV: now, session key prefix, id. Returns 1 if it existed.
var deleteByIDScript = script(`
local now = clock(ARGV[1])
prune(KEYS[1], now)
local want = ARGV[3] .. ':'
local n = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(m, 1, #want) == want then
    local h = hashOf(m)
    if h then n = n + redis.call('DEL', ARGV[2] .. h) end
    redis.call('ZREM', KEYS[1], m)
  end
end
fit(KEYS[1], now)
return n
`)

// listScript returns the fields of every live session of a user and
// drops what is dead from the index (and Redis) on the way.
// KEYS: index, epoch. ARGV: now, session key prefix.
var listScript = script(`
local now = clock(ARGV[1])
local ep = epoch(KEYS[2])
local changed = prune(KEYS[1], now)
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = hashOf(m)
  local f = {}
  if h then f = hmget(ARGV[2] .. h) end
  if h and alive(f, now, ep) then
    out[#out + 1] = f
  else
    if f[ID] then redis.call('DEL', ARGV[2] .. h) end
    redis.call('ZREM', KEYS[1], m)
    changed = changed + 1
  end
end
if changed > 0 then fit(KEYS[1], now) end
return out
`)
