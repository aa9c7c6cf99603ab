package redisx

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/redis/rueidis"
)

// DoMultiCache is DoCache for several reads at once: the ones held in the
// local tier answer at once, the others go to Redis together in one round
// trip (none when all are local). Each entry of cmds carries its own local
// TTL (rueidis.CT(cmd, ttl)); Redis invalidates local copies when their
// keys change, and each is kept no longer than its key's PTTL. Keep the
// keys under one hash tag: in Cluster mode keys on other slots would go to
// other nodes, and only the first key's node's lease is renewed. The local
// tier's rules are DoCache's (local.go). Results are in the order of cmds;
// errors are per command, as in DoMulti.
func (c *Client) DoMultiCache(ctx context.Context, cmds ...rueidis.CacheableTTL) []rueidis.RedisResult {
	switch len(cmds) {
	case 0:
		return nil
	case 1:
		// rueidis's DoCache allocates nothing on a hit; its DoMultiCache
		// hands out pooled results it never gets back.
		return []rueidis.RedisResult{c.cacheRead(ctx, time.Time{}, cmds[0].Cmd, cmds[0].TTL)}
	}
	return c.multiCache(ctx, cmds, true)
}

// multiCache is DoMultiCache for two reads or more. renew says whether a
// lapsed lease may be renewed and the reads made again (once).
func (c *Client) multiCache(ctx context.Context, cmds []rueidis.CacheableTTL, renew bool) []rueidis.RedisResult {
	slot := uint16(keylessSlot)
	key := ""
	var ttl time.Duration
	for i := range cmds {
		if s := cmds[i].Cmd.Slot(); s < keylessSlot && key == "" {
			slot, key = s, cacheKey(cmds[i].Cmd)
		}
		ttl = max(ttl, cmds[i].TTL)
	}
	since := c.written.reading(ttl)
	lapsed := c.leaseLapsed(c.breakerFor(slot), time.Now())
	// The names and the arguments that may be needed again are read
	// before the call: rueidis recycles the commands once it has answered.
	var names []string
	if c.cfg.CommandHook != nil || c.cfg.CommandObserver != nil {
		names = make([]string, len(cmds))
		for i := range cmds {
			names[i] = cmds[i].Cmd.Commands()[0]
		}
	}
	var plain [][]string // by index: the arguments of a read to make again
	for i := range cmds {
		if renew && lapsed || c.written.marked(cacheKey(cmds[i].Cmd)) {
			if plain == nil {
				plain = make([][]string, len(cmds))
			}
			plain[i] = slices.Clone(cmds[i].Cmd.Commands())
		}
	}
	// The name and key of each read, to make it plainly if a full Redis
	// refuses its tracking (refusedReads).
	reads := make([][2]string, len(cmds))
	for i := range cmds {
		if args := cmds[i].Cmd.Commands(); len(args) == 2 {
			reads[i] = [2]string{args[0], args[1]}
		}
	}
	rdb, n, done, err := c.admit(ctx, slot)
	if err != nil {
		return errorResults(len(cmds), err)
	}
	lazy := c.lazyDeadlineFor(ctx, time.Time{})
	start := time.Now()
	res := rdb.DoMultiCache(lazy.context(ctx), cmds...)
	lazy.release()
	var sent []string
	hits := 0
	var failure error
	var reread []int // hits this process wrote after their copies were made
	for i, r := range res {
		if r.IsCacheHit() {
			hits++
			if plain != nil && plain[i] != nil && !c.written.trust(plain[i][1], true, since) {
				reread = append(reread, i)
			}
			continue
		}
		if names != nil {
			sent = append(sent, names[i])
		}
		if e := r.Error(); failure == nil && isConnectionFailure(e) {
			failure = e
		}
	}
	if hits == len(res) {
		// As in DoCache: local hits say nothing about Redis's health.
		done(errBreakerExcluded)
	} else {
		if names == nil {
			c.sent(nil)
		} else {
			c.sent(sent)
		}
		c.observed(ctx, sent, start, failure)
		if c.end(ctx, start, n, done, failure) != nil {
			c.replaceFailures(ctx, res)
			c.replaceRefusals(res)
			return res
		}
		c.replaceRefusals(res)
		c.refusedReads(ctx, res, reads)
		for i, r := range res {
			if !r.IsCacheHit() && plain != nil && plain[i] != nil {
				c.written.trust(plain[i][1], false, since)
			}
		}
	}
	if renew && (lapsed && hits > 0 || len(reread) > 0) {
		// Copies were read over a lapsed lease, or of keys this process
		// wrote before the reads began: one round trip on their
		// connection, sent after that, brings what it holds up to date
		// (the reads that went to Redis were one). Then read again: all
		// of them over a lapsed lease (every command was copied), else the
		// written ones.
		if hits == len(res) {
			if err := c.renewLease(ctx, time.Time{}, key); err != nil {
				return errorResults(len(cmds), err)
			}
		}
		for _, i := range reread {
			c.written.settled(plain[i][1], since)
		}
		if lapsed {
			again := make([]rueidis.CacheableTTL, len(cmds))
			for i := range cmds {
				again[i] = rueidis.CT(rueidis.Cacheable(plainRead(plain[i])), cmds[i].TTL)
			}
			return c.multiCache(ctx, again, false)
		}
		again := make([]rueidis.CacheableTTL, len(reread))
		for j, i := range reread {
			again[j] = rueidis.CT(rueidis.Cacheable(plainRead(plain[i])), cmds[i].TTL)
		}
		var fresh []rueidis.RedisResult
		if len(again) == 1 {
			fresh = []rueidis.RedisResult{c.cacheOnce(ctx, time.Time{}, again[0].Cmd, plain[reread[0]], plain[reread[0]], again[0].TTL, since, false)}
		} else {
			fresh = c.multiCache(ctx, again, false)
		}
		hits -= len(reread)
		for j, i := range reread {
			res[i] = fresh[j]
		}
		reread = nil
	}
	c.m.localHits.Add(float64(hits))
	if hits > 0 {
		c.renewSoon(n, start, key)
	}
	if len(reread) > 0 {
		again := make([]rueidis.Completed, len(reread))
		for j, i := range reread {
			again[j] = plainRead(plain[i])
		}
		for j, r := range c.DoMulti(ctx, again...) {
			res[reread[j]] = r
		}
	}
	return res
}

// refusedReads makes again, plainly and in one pipeline, the reads of res
// that a full Redis refused: under OOM Redis queues no command in a MULTI,
// which is how rueidis asks for a key to be tracked, though it still
// answers the read itself. reads holds each read's name and key ("" when
// the read had more arguments and cannot be rebuilt; it keeps its error).
func (c *Client) refusedReads(ctx context.Context, res []rueidis.RedisResult, reads [][2]string) {
	var idx []int
	var again []rueidis.Completed
	for i, r := range res {
		if reads[i][0] != "" && errors.Is(r.Error(), ErrOutOfMemory) {
			idx = append(idx, i)
			again = append(again, plainRead(reads[i][:]))
		}
	}
	if len(again) == 0 {
		return
	}
	for j, r := range c.DoMulti(ctx, again...) {
		res[idx[j]] = r
	}
}
