package redisx

import (
	"context"
	"time"

	"github.com/redis/rueidis"
)

// DoMultiCache is DoCache for several reads at once: the ones held in the
// local tier answer at once, the others go to Redis together in one round
// trip (none when all are local). Each entry of cmds carries its own local
// TTL (rueidis.CT(cmd, ttl)); Redis invalidates local copies when their
// keys change, and each is kept no longer than its key's PTTL. Keep the
// keys under one hash tag: in Cluster mode keys on other slots would go to
// other nodes. As with DoCache, an open breaker refuses even local hits.
// Results are in the order of cmds; errors are per command, as in DoMulti.
func (c *Client) DoMultiCache(ctx context.Context, cmds ...rueidis.CacheableTTL) []rueidis.RedisResult {
	if len(cmds) == 0 {
		return nil
	}
	slot := uint16(keylessSlot)
	for i := range cmds {
		if s := cmds[i].Cmd.Slot(); s < keylessSlot {
			slot = s
			break
		}
	}
	// The names are read before the call: rueidis recycles the commands
	// once it has answered.
	var names []string
	if c.cfg.CommandHook != nil {
		names = make([]string, len(cmds))
		for i := range cmds {
			names[i] = cmds[i].Cmd.Commands()[0]
		}
	}
	rdb, done, err := c.admit(ctx, slot)
	if err != nil {
		return errorResults(len(cmds), err)
	}
	dctx, cancel := c.deadline(ctx)
	start := time.Now()
	var res []rueidis.RedisResult
	if len(cmds) == 1 {
		// rueidis's DoCache allocates nothing on a hit; its DoMultiCache
		// hands out pooled results it never gets back.
		res = []rueidis.RedisResult{rdb.DoCache(dctx, cmds[0].Cmd, cmds[0].TTL)}
	} else {
		res = rdb.DoMultiCache(dctx, cmds...)
	}
	cancel()
	var sent []string
	hits := 0
	var failure error
	for i, r := range res {
		if r.IsCacheHit() {
			hits++
			continue
		}
		if names != nil {
			sent = append(sent, names[i])
		}
		if e := r.Error(); failure == nil && isConnectionFailure(e) {
			failure = e
		}
	}
	c.m.localHits.Add(float64(hits))
	if hits == len(res) {
		// As in DoCache: local hits say nothing about Redis's health.
		done(errBreakerExcluded)
		return res
	}
	if names == nil {
		c.sent(nil)
	} else {
		c.sent(sent)
	}
	if c.end(ctx, start, done, failure) != nil {
		for i, r := range res {
			if e := r.Error(); isConnectionFailure(e) {
				res[i] = rueidis.NewErrorResult(c.callerError(ctx, e))
			}
		}
	}
	return res
}
