package redisx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

var (
	// ErrUnavailable reports that Redis could not be reached in time: it is
	// down, the connection broke, the call's deadline passed or the circuit
	// breaker is open. The operation may or may not have been applied.
	ErrUnavailable = errors.New("redisx: redis unavailable")

	// ErrClosed reports a call on a Client after Close.
	ErrClosed = errors.New("redisx: client closed")

	// ErrInvalidConfig is wrapped by every Config validation error.
	ErrInvalidConfig = errors.New("redisx: invalid config")

	// ErrOutOfMemory reports that Redis refused the command with its OOM
	// reply: it reached maxmemory and could free nothing (noeviction, or
	// no key the policy may evict). The command was not applied; reads
	// still work, writes fail until memory is freed. It is not
	// ErrUnavailable: Redis answered, so the circuit breaker does not count
	// it. The error wraps Redis's own reply as well (errors.As with a
	// *rueidis.RedisError), and is counted in redisx_oom_replies_total.
	ErrOutOfMemory = errors.New("redisx: redis out of memory")
)

// outOfMemory wraps an OOM reply in ErrOutOfMemory, keeping the reply
// matchable.
func outOfMemory(err error) error {
	if errors.Is(err, ErrOutOfMemory) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrOutOfMemory, err)
}

// IsNil reports whether err is Redis's nil reply (a missing key or field).
// It exists so callers never import rueidis just to tell a miss from a failure.
func IsNil(err error) bool { return rueidis.IsRedisNil(err) }

// isConnectionFailure tells errors that say something about Redis's health
// (the breaker counts them) from replies that say something about the
// command (WRONGTYPE, NOSCRIPT, nil), which prove Redis is answering.
func isConnectionFailure(err error) bool {
	if err == nil || rueidis.IsRedisNil(err) {
		return false
	}
	var re *rueidis.RedisError
	if errors.As(err, &re) {
		// LOADING, MASTERDOWN, CLUSTERDOWN and TRYAGAIN mean Redis cannot
		// serve us right now; every other error reply is about the command.
		return re.IsLoading() || re.IsClusterDown() || re.IsTryAgain() || isMasterDown(re)
	}
	return true
}

// isOOM reports whether err is Redis refusing a command because it reached
// maxmemory and could free nothing (noeviction, or no key it may evict): a
// reply, so Redis is answering, but writes fail until memory is freed.
func isOOM(err error) bool {
	var re *rueidis.RedisError
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "OOM ")
}

func isMasterDown(re *rueidis.RedisError) bool {
	s := re.Error()
	return len(s) >= 10 && s[:10] == "MASTERDOWN"
}

// isTimeout reports deadline errors, which come both from contexts and from
// net.Conn deadlines.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// replied looks at one reply of Redis for what it says about Redis
// itself. An OOM refusal is an answer (the breaker does not count it) that
// callers must be able to tell from other replies: it is counted, logged
// (throttled) and returned as ErrOutOfMemory. Any other reply gives nil:
// the result stands as it is.
func (c *Client) replied(err error) error {
	if err == nil || !isOOM(err) {
		return nil
	}
	c.m.oom.Inc()
	c.oomLog.note(c.cfg, err)
	return outOfMemory(err)
}

// oomLog keeps a full Redis, refusing every write of every request, to one
// "redis out of memory" line per Config.OutOfMemoryLogInterval, saying how
// many refusals it stands for.
type oomLog struct {
	last    atomic.Int64 // unix nanoseconds of the last line, 0 before the first
	refused atomic.Int64 // refusals since the last line
}

func (l *oomLog) note(cfg Config, err error) {
	l.refused.Add(1)
	now := time.Now().UnixNano()
	last := l.last.Load()
	if last != 0 && now-last < int64(cfg.OutOfMemoryLogInterval) || !l.last.CompareAndSwap(last, now) {
		return
	}
	cfg.Logger.Warn("redis out of memory",
		"refused", l.refused.Swap(0),
		"interval", cfg.OutOfMemoryLogInterval.String(),
		"error", err.Error(),
		"hint", "Redis reached maxmemory and may evict nothing: writes fail until memory is freed; raise maxmemory or use maxmemory-policy volatile-ttl")
}
