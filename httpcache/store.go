package httpcache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/redis/rueidis"
	"github.com/theaterscriptpro/tsp/redisx"
)

// How an entry gets stored, and why no purge can be lost to a racing store:
//
//  1. acquire: one pipeline takes the key's lease (SET NX PX, in a script
//     that hands back an entry stored meanwhile instead) and reads the purge
//     epoch of each of the entry's tags. This happens before the handler
//     reads the database.
//  2. the handler runs.
//  3. store: one pipeline adds the entry key to each tag's set and SETs the
//     entry with its lifetime as PX, releasing the lease.
//  4. re-check: one pipeline reads the tags' epochs again. If one moved, a
//     purge ran while the handler may have read old data: the entry is
//     deleted, and not handed to waiting requests.
//
// A purge bumps the epoch and takes the set's members in one script, then
// UNLINKs them. Either it saw the member (and deletes the entry), or it
// bumped the epoch after step 3 added it... which the re-check in step 4
// sees. The epochs stored in the record also let this process refuse its
// own purged entries (purgeLog) without another round trip on hits.

// acquireScript takes the lease of a missed key, or hands back an entry
// another instance stored in the meantime.
//
//	KEYS[1] entry, KEYS[2] lease
//	ARGV[1] lease token, ARGV[2] lease ms, ARGV[3] "1" when the caller
//	        already knows the entry is stale and wants the lease anyway
//
// Reply: {state, entry?}; state 2 = lease taken, 1 = held by another
// instance, 0 = an entry exists (lease not tried).
var acquireScript = redisx.NewScript(`
local v = redis.call('GET', KEYS[1])
-- An entry the caller has not seen may be fresh: return it, take no lease.
if v and ARGV[3] ~= '1' then return {0, v} end
-- One instance at a time runs the handler for a key.
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if v then return {2, v} end
  return {2}
end
if v then return {1, v} end
return {1}`)

// storeScript writes the entry and releases the lease if still ours.
//
//	KEYS[1] entry, KEYS[2] lease
//	ARGV[1] record, ARGV[2] lifetime ms, ARGV[3] lease token ("" if none)
var storeScript = redisx.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
-- The lease may have lapsed and been taken by another instance: leave theirs.
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
return 1`)

// releaseScript drops the lease if it is still ours (nothing was stored).
var releaseScript = redisx.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// tagAddScript records an entry in a tag's set: a sorted set of entry keys
// scored by when each expires (Redis's clock), so the set forgets dead
// entries by itself and lives exactly as long as its longest entry.
//
//	KEYS[1] tag set; ARGV[1] entry key, ARGV[2] entry lifetime ms
var tagAddScript = redisx.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Forget expired entries: the set is bounded by the live ones.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
-- The set expires with its longest-lived entry, never before.
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1`)

// purgeScript bumps a tag's epoch and takes its members, atomically. The
// members move to the tag's pending set rather than vanish, and leave it
// only once their entries are deleted (untrackScript): if Redis runs this
// script but the reply is lost (a timeout), the retry finds them there.
//
//	KEYS[1] tag set, KEYS[2] tag epoch, KEYS[3] tag pending set
//	ARGV[1] epoch lifetime ms
//
// Reply: {epoch, {entry keys}}.
var purgeScript = redisx.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- The epoch only grows, even after a Redis restart lost it (it restarts
-- from the clock), so a store that read the old one always sees the change.
local e = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1, now)
redis.call('SET', KEYS[2], string.format('%.0f', e), 'PX', ARGV[1])
-- Move the members to pending (keeping each one's expiry as its score).
redis.call('ZUNIONSTORE', KEYS[3], 2, KEYS[3], KEYS[1], 'AGGREGATE', 'MAX')
redis.call('UNLINK', KEYS[1])
-- Pending forgets entries that expired by themselves and lives no longer
-- than its longest-lived one.
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[3], last[2]) end
return {e, redis.call('ZRANGE', KEYS[3], 0, -1)}`)

// bumpScript bumps a tag's epoch only, so stores racing a glob purge see it.
var bumpScript = redisx.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local e = math.max(tonumber(redis.call('GET', KEYS[1]) or '0') + 1, now)
redis.call('SET', KEYS[1], string.format('%.0f', e), 'PX', ARGV[1])
return e`)

func (c *Cache) tagSetKey(tag string) string   { return c.keys.Tagged("httpcache:tag", tag) }
func (c *Cache) tagEpochKey(tag string) string { return c.keys.Tagged("httpcache:tag", tag, "epoch") }
func (c *Cache) tagPendingKey(tag string) string {
	return c.keys.Tagged("httpcache:tag", tag, "pending")
}

// epochTTL keeps an epoch well beyond any entry that read it.
func (c *Cache) epochTTL() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(24*time.Hour, 2*c.lifetime)
}

type leaseResult struct {
	token  string     // "" when the handler runs without the lease
	epochs []tagEpoch // the tags' epochs before the handler ran
	rec    *record    // a fresh entry another instance stored meanwhile
}

// acquire takes the key's lease, or waits while another instance holds it
// for the entry it will store. If that instance dies its lease lapses and
// this one takes over; if no entry comes within MaxLeaseWait (at most
// twice LeaseTTL), this one runs the handler anyway.
func (c *Cache) acquire(ctx context.Context, rt *route, k entryKey, tags []string, force bool) (leaseResult, error) {
	lease := k.lease(c.keys, rt.ns)
	token := newToken()
	keys := []string{k.entry, lease}
	leaseMs := strconv.FormatInt(c.cfg.LeaseTTL.Milliseconds(), 10)
	cmds := make([]rueidis.Completed, 0, 1+len(tags))
	deadline := time.Now().Add(min(2*c.cfg.LeaseTTL, c.cfg.MaxLeaseWait))
	poll := 2 * time.Millisecond
	skip := int64(-1) // storedMs of an entry known to be unwanted
	for {
		args := []string{token, leaseMs, "0"}
		if force {
			args[2] = "1"
		}
		cmds = append(cmds[:0], acquireScript.EvalSha(keys, args))
		for _, t := range tags {
			cmds = append(cmds, c.rdb.B().Get().Key(c.tagEpochKey(t)).Build())
		}
		rctx, cancel := context.WithTimeout(ctx, c.cfg.LookupTimeout)
		res := c.rdb.DoMulti(rctx, cmds...)
		res[0] = acquireScript.Retry(rctx, c.rdb, res[0], keys, args)
		cancel()
		epochs, err := readEpochs(tags, res[1:])
		if err != nil {
			return leaseResult{}, err
		}
		arr, err := res[0].ToArray()
		if err != nil {
			return leaseResult{}, err
		}
		if len(arr) == 0 {
			return leaseResult{}, errNoReply
		}
		state, err := arr[0].AsInt64()
		if err != nil {
			return leaseResult{}, err
		}
		won := state == 2
		if len(arr) > 1 {
			s, _ := arr[1].ToString()
			rec, ok := decodeRecord(s)
			if ok && force && skip == -1 {
				skip = rec.storedMs // the entry we came to replace
			}
			if ok && rec.storedMs != skip && c.nowMs()-rec.storedMs < rec.ttlMs && !c.purges.stale(&rec) {
				if won {
					c.releaseLease(ctx, rt, k, token)
				}
				return leaseResult{rec: &rec}, nil
			}
			if state == 0 {
				force = true // stale or corrupt: go for the lease now
				continue
			}
		}
		if won {
			return leaseResult{token: token, epochs: epochs}, nil
		}
		if time.Now().After(deadline) {
			return leaseResult{epochs: epochs}, nil
		}
		select {
		case <-ctx.Done():
			return leaseResult{}, ctx.Err()
		case <-time.After(poll):
		}
		poll = min(2*poll, 50*time.Millisecond)
	}
}

func readEpochs(tags []string, res []rueidis.RedisResult) ([]tagEpoch, error) {
	out := make([]tagEpoch, len(tags))
	for i, t := range tags {
		out[i].tag = t
		n, err := res[i].AsInt64()
		if err != nil && !redisx.IsNil(err) {
			return nil, err
		}
		out[i].epoch = n
	}
	return out, nil
}

// store writes the entry and its tags, then checks that no purge ran
// since acquire (see the comment at the top of this file). It reports
// whether the entry stands. Storing is detached from the request: a client
// that leaves does not cost the others the entry.
func (c *Cache) store(ctx context.Context, rt *route, k entryKey, enc []byte, lease leaseResult) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.StoreTimeout)
	defer cancel()
	lifeMs := strconv.FormatInt(rt.lifetime.Milliseconds(), 10)
	type scripted struct {
		s          *redisx.Script
		keys, args []string
	}
	calls := make([]scripted, 0, len(lease.epochs)+1)
	for _, t := range lease.epochs {
		calls = append(calls, scripted{tagAddScript, []string{c.tagSetKey(t.tag)}, []string{k.entry, lifeMs}})
	}
	// The entry goes last: on a single server a pipeline runs in order, so
	// the entry never exists untracked by its tags.
	calls = append(calls, scripted{storeScript, []string{k.entry, k.lease(c.keys, rt.ns)}, []string{string(enc), lifeMs, lease.token}})
	cmds := make([]rueidis.Completed, len(calls))
	for i, s := range calls {
		cmds[i] = s.s.EvalSha(s.keys, s.args)
	}
	ok := true
	for i, r := range c.rdb.DoMulti(ctx, cmds...) {
		if r = calls[i].s.Retry(ctx, c.rdb, r, calls[i].keys, calls[i].args); r.Error() != nil {
			ok = false
		}
	}
	if ok && len(lease.epochs) > 0 {
		cmds = cmds[:0]
		for _, t := range lease.epochs {
			cmds = append(cmds, c.rdb.B().Get().Key(c.tagEpochKey(t.tag)).Build())
		}
		now, err := readEpochs(tags(lease.epochs), c.rdb.DoMulti(ctx, cmds...))
		if err != nil {
			ok = false
		} else {
			for i := range now {
				if now[i].epoch != lease.epochs[i].epoch {
					c.m.raced.Inc()
					ok = false
				}
			}
		}
	}
	if !ok {
		// Untracked, raced by a purge, or unknown: it must not stay.
		_ = c.rdb.Do(ctx, c.rdb.B().Unlink().Key(k.entry).Build()).Error()
		c.m.errors.WithLabelValues("store").Inc()
	}
	return ok
}

func tags(es []tagEpoch) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.tag
	}
	return out
}

func (c *Cache) releaseLease(ctx context.Context, rt *route, k entryKey, token string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.StoreTimeout)
	defer cancel()
	keys, args := []string{k.lease(c.keys, rt.ns)}, []string{token}
	_ = releaseScript.Run(ctx, c.rdb, keys, args).Error()
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
