package redisx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

// Replication is asynchronous: a master answers a write before its
// replicas have it. When the master crashes and a replica is promoted
// (Sentinel or Cluster failover), the writes the replica had not received
// are lost, silently, although every caller saw them succeed. With this
// service that means a new session disappears (the user logs in again), a
// logout or session revocation comes undone, a rate-limit counter restarts
// lower, a cache invalidation is lost (a stale entry lives to its TTL), a
// view count falls short. Cache entries and leases cost only a reload.
//
// WAIT makes the master hold the reply until enough replicas acknowledge
// the write, so a write that must survive a failover can be confirmed.
// It is not a transaction: a write that timed out waiting is still
// applied on the master, and a failover that promotes a replica which did
// not acknowledge can still lose it (Sentinel and Cluster prefer the most
// up-to-date replica, so with WAIT for every replica that is rare).

// ErrNotReplicated reports that a write was applied on the master but fewer
// replicas than asked acknowledged it before the timeout: it is lost if the
// master fails before they catch up. The write is not undone.
var ErrNotReplicated = errors.New("redisx: write not acknowledged by enough replicas")

// errCrossSlotWait reports writes for DoWait that live on different slots:
// one WAIT can only vouch for writes to one master.
var errCrossSlotWait = errors.New("redisx: DoWait: the commands' keys must share one hash slot (one hash tag)")

// noSlot is rueidis's slot for keyless commands (MULTI, EXEC, WAIT).
const noSlot = 1 << 14

// DoWait sends the writes in cmds and then WAIT replicas, in one pipeline
// on one connection, and returns the writes' results and how many replicas
// acknowledged them. WAIT covers the writes sent before it on the same
// connection, which is why it is not a separate call: sent on its own it
// would go out on any connection and could vouch for nothing.
//
// The keys of cmds must share one hash slot (keep them under one hash tag),
// so one master serves them all; MULTI/EXEC may wrap them. replicas must be
// at least 1. timeout bounds the wait for acknowledgements; it is capped
// at three quarters of the client's CommandTimeout, so the reply arrives
// within the call's deadline.
//
// The error wraps ErrNotReplicated when fewer than replicas acknowledged
// (the writes are applied on the master nonetheless), ErrUnavailable when
// Redis could not be reached, or is the first write's error reply.
func (c *Client) DoWait(ctx context.Context, replicas int, timeout time.Duration, cmds ...rueidis.Completed) ([]rueidis.RedisResult, int, error) {
	if len(cmds) == 0 {
		return nil, 0, nil
	}
	if replicas < 1 {
		return nil, 0, fmt.Errorf("redisx: DoWait: replicas must be at least 1, got %d", replicas)
	}
	if timeout <= 0 {
		// WAIT with timeout 0 would block forever.
		return nil, 0, fmt.Errorf("redisx: DoWait: timeout must be positive, got %s", timeout)
	}
	slot := uint16(noSlot)
	for i := range cmds {
		s := cmds[i].Slot()
		if s == noSlot {
			continue
		}
		if slot != noSlot && s != slot {
			// rueidis would panic on a pipeline that mixes slots with a
			// keyless command; say it as an error instead.
			return nil, 0, errCrossSlotWait
		}
		slot = s
	}
	wait := min(timeout, c.cfg.CommandTimeout*3/4)
	all := make([]rueidis.Completed, 0, len(cmds)+1)
	all = append(all, cmds...)
	// WAIT is a blocking command to rueidis, so the whole pipeline goes out
	// on one dedicated connection, writes first.
	all = append(all, c.B().Wait().Numreplicas(int64(replicas)).Timeout(max(wait.Milliseconds(), 1)).Build())
	res := c.DoMulti(ctx, all...)
	writes, waitRes := res[:len(cmds)], res[len(cmds)]
	for _, r := range writes {
		if err := r.Error(); err != nil && !IsNil(err) {
			return writes, 0, fmt.Errorf("redisx: DoWait: %w", err)
		}
	}
	n, err := waitRes.AsInt64()
	if err != nil {
		return writes, 0, fmt.Errorf("redisx: DoWait: wait: %w", err)
	}
	if n < int64(replicas) {
		return writes, int(n), fmt.Errorf("%w: %d of %d within %s", ErrNotReplicated, n, replicas, wait)
	}
	return writes, int(n), nil
}

// SetWait is Set followed by WAIT (see DoWait): for a value that must
// survive a failover, such as a new session.
func (c *Client) SetWait(ctx context.Context, key string, value []byte, ttl time.Duration, replicas int, timeout time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("redisx: set %q: ttl must be positive", key)
	}
	_, _, err := c.DoWait(ctx, replicas, timeout,
		c.B().Set().Key(key).Value(rueidis.BinaryString(value)).Px(ttl).Build())
	return err
}

// RunWait is Run followed by WAIT (see DoWait): the script runs with
// EVALSHA, or EVAL on NOSCRIPT, and its writes are confirmed by replicas
// replicas within timeout. On ErrNotReplicated the script's result is
// returned with the error.
func (s *Script) RunWait(ctx context.Context, c *Client, keys, args []string, replicas int, timeout time.Duration) (rueidis.RedisResult, error) {
	res, _, err := c.DoWait(ctx, replicas, timeout, s.EvalSha(keys, args))
	if len(res) == 1 && isNoScript(res[0].Error()) {
		// Nothing ran, so nothing was waited for: run the source instead.
		res, _, err = c.DoWait(ctx, replicas, timeout, s.Eval(keys, args))
	}
	if len(res) != 1 {
		return rueidis.NewErrorResult(err), err
	}
	return res[0], err
}
