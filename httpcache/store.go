package httpcache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
//  3. store: the entry is SET with its lifetime as PX (releasing the lease);
//     the record holds the epochs read in step 1.
//  4. re-check: one pipeline reads the tags' epochs again. If one moved, a
//     purge ran while the handler may have read old data: the entry is
//     deleted, and not handed to waiting requests.
//
// A purge only bumps its tags' epochs (invalidate.go): one command per tag,
// however many entries carry the tag. Every lookup reads the epochs of the
// entry's tags beside the entry (from the local tier, where Redis's
// invalidation pushes keep them current) and refuses a record stored under
// an older epoch; so does acquire. A store that read the old epoch in step
// 1 either sees the bump in step 4 and deletes itself, or is refused by
// every later lookup because its record carries the old epoch. Nothing
// ever lists a tag's entries: there is no set of them to walk.

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

// bumpScript is a purge: it moves a tag's epoch forward. O(1), whatever
// carries the tag.
//
//	KEYS[1] tag epoch; ARGV[1] epoch lifetime ms
//
// The epoch only grows, even after a Redis restart lost it (it restarts
// from the clock), so a record stored under the old one is always refused.
var bumpScript = redisx.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local e = math.max(tonumber(redis.call('GET', KEYS[1]) or '0') + 1, now)
redis.call('SET', KEYS[1], string.format('%.0f', e), 'PX', ARGV[1])
return e`)

func (c *Cache) tagEpochKey(tag string) string { return c.keys.Tagged("httpcache:tag", tag, "epoch") }

// epochsMoved reports whether a purge of one of rec's tags ran after rec
// was stored: cur holds tags' epochs as just read. With all, a record tag
// that cur does not hold cannot be checked, so it counts as moved; without
// it (a plain route's lookup, which reads the namespace's epoch only) such
// tags are left to the UNLINK their purge also sends.
func epochsMoved(rec *record, cur []tagEpoch, all bool) bool {
	for it := rec.tagIter(); it.next(); {
		found := false
		for _, c := range cur {
			if c.tag == it.tag {
				if it.epoch < c.epoch {
					return true
				}
				found = true
				break
			}
		}
		if !found && all {
			return true
		}
	}
	return false
}

// epochTTL keeps an epoch well beyond any entry that read it: twice the
// longest lifetime (TTL plus stale windows) of any route, at least an hour.
// No longer: every written resource has an epoch key, and under
// maxmemory-policy volatile-ttl keys that live as long as sessions (24 h)
// compete with them for eviction (cmd/theaterd TestEvictionPolicies).
func (c *Cache) epochTTL() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(time.Hour, 2*c.lifetime)
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
			if ok && rec.storedMs != skip && c.nowMs()-rec.storedMs < rec.ttlMs && !c.purges.stale(&rec) && !epochsMoved(&rec, epochs, true) {
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
			// The holder is gone or far too slow (a lease copied to a
			// replica just before a failover outlives its holder): take the
			// lease over, so this run's entry is stored and the next miss
			// does not wait again. A holder that was only slow finds its
			// lease taken and leaves this entry in place (storeScript).
			tctx, cancel := context.WithTimeout(ctx, c.cfg.LookupTimeout)
			err := c.rdb.Do(tctx, c.rdb.B().Set().Key(lease).Value(token).PxMilliseconds(c.cfg.LeaseTTL.Milliseconds()).Build()).Error()
			cancel()
			if err != nil {
				return leaseResult{epochs: epochs}, nil
			}
			return leaseResult{token: token, epochs: epochs}, nil
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
	return readEpochsInto(make([]tagEpoch, 0, len(tags)), tags, res)
}

// readEpochsInto appends the epochs of tags, read as res, to out: an
// epoch never set (or expired) is 0.
func readEpochsInto(out []tagEpoch, tags []string, res []rueidis.RedisResult) ([]tagEpoch, error) {
	for i, t := range tags {
		n, err := res[i].AsInt64()
		if err != nil && !redisx.IsNil(err) {
			return nil, err
		}
		out = append(out, tagEpoch{tag: t, epoch: n})
	}
	return out, nil
}

// store writes the entry, then checks that no purge ran since acquire
// (see the comment at the top of this file). It reports whether the entry
// stands. Storing is detached from the request: a client that leaves does
// not cost the others the entry.
func (c *Cache) store(ctx context.Context, rt *route, k entryKey, enc []byte, lease leaseResult) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.StoreTimeout)
	defer cancel()
	cmd, keys, args := c.storeCmd(k.entry, k.lease(c.keys, rt.ns), enc, rt.lifetime, lease.token)
	res := c.rdb.DoMulti(ctx, cmd)[0]
	if lease.token != "" {
		res = storeScript.Retry(ctx, c.rdb, res, keys, args)
	}
	storeErr := res.Error()
	ok := storeErr == nil
	if ok && len(lease.epochs) > 0 {
		cmds := make([]rueidis.Completed, 0, len(lease.epochs))
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
		// Raced by a purge, or unknown: it must not stay.
		_ = c.rdb.Do(ctx, c.rdb.B().Unlink().Key(k.entry).Build()).Error()
		if errors.Is(storeErr, redisx.ErrOutOfMemory) {
			// Redis is full: the response was served, only not kept.
			c.m.storeOOM.Inc()
		} else {
			c.m.errors.WithLabelValues("store").Inc()
		}
	}
	return ok
}

// storeCmd is the one command that writes an entry: SET with its lifetime
// as PX, or, when the writer holds the key's lease, the store script that
// also releases it. keys and args are the script's (for Retry).
func (c *Cache) storeCmd(entry, lease string, enc []byte, life time.Duration, token string) (cmd rueidis.Completed, keys, args []string) {
	if token == "" {
		return c.rdb.B().Set().Key(entry).Value(rueidis.BinaryString(enc)).Px(life).Build(), nil, nil
	}
	keys = []string{entry, lease}
	args = []string{string(enc), strconv.FormatInt(life.Milliseconds(), 10), token}
	return storeScript.EvalSha(keys, args), keys, args
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
