package redisx

import (
	"context"
	"errors"
	"net"
	"strings"

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
)

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
