package redisx

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// The local tier: DoCache and DoMultiCache read through rueidis's
// server-assisted client-side cache (RESP3 CLIENT TRACKING). A copy held
// in this process answers with no round trip; Redis pushes an
// invalidation when the key changes, on the connection that read it. The
// rule "may this process answer from its copy?" lives here, for every
// package that reads through the tier (httpcache, session):
//
//  1. Liveness, per connection. A copy is served only while the
//     connection that holds it, the one its invalidation would arrive on,
//     has answered a command sent within Config.LocalLease. Redis writes
//     a push before the reply to any command it reads later on the same
//     connection, and rueidis handles a push before the replies behind
//     it; so once a command sent at t is answered, every invalidation for
//     a write done before t has been applied. With the local tier on, the
//     client keeps one connection per node (clientOption), so a node's
//     lease (nodeBreaker) is its connection's. When half the lease is gone
//     a local hit starts one round trip on that connection in the
//     background; when all of it is gone a local hit is not served: the
//     read makes that round trip itself (failing if it fails) and reads
//     again, now from a copy that is current or from Redis. A read that
//     goes to Redis renews the lease by itself. So no copy is served over
//     a lapsed lease, and answers never flip back to an older value. A
//     connection failure ends the node's lease at once.
//
//  2. Read-your-writes. The writer's own invalidation reaches it a moment
//     after its write returned (Redis sends it after the reply). Callers
//     mark what they wrote (MarkWritten) before they return; a local copy
//     of a marked key is not served as it is: the read first makes one
//     round trip on the connection holding it, as for a lapsed lease,
//     which applies the invalidation if there was one (Redis queued it
//     when the write ran, before that command), clears the mark and
//     reads again. A read of a marked key that found no local copy and
//     started after
//     the mark went to Redis after the write: it clears the mark too. A
//     read that started before the mark was concurrent with the write:
//     what it read may be served to its own caller, and the mark stays.

// lease is one connection's liveness: when it last answered.
type lease struct {
	heard   atomic.Int64 // unix ns when the last command it answered was sent
	replied atomic.Int64 // unix ns when it last delivered an answer
	probing atomic.Bool  // a background renewal is in flight
}

// answered records that a command sent at start was answered at now. A
// later send time never gives way to an earlier one.
func (l *lease) answered(start, now time.Time) {
	l.replied.Store(now.UnixNano())
	ns := start.UnixNano()
	for {
		cur := l.heard.Load()
		if cur >= ns || l.heard.CompareAndSwap(cur, ns) {
			return
		}
	}
}

// repliedSince reports whether the node delivered an answer after start:
// it was answering while a call begun at start waited.
func (l *lease) repliedSince(start time.Time) bool {
	return l.replied.Load() > start.UnixNano()
}

// lost ends the lease: the connection failed, and what it held may have
// missed invalidations.
func (l *lease) lost() { l.heard.Store(0) }

// age is how long ago, at now, the last answered command was sent.
func (l *lease) age(now time.Time) time.Duration {
	return time.Duration(now.UnixNano() - l.heard.Load())
}

// leaseLapsed reports whether n's connection has not answered a command
// sent within LocalLease: a local hit on it is not served until it has.
func (c *Client) leaseLapsed(n *nodeBreaker, now time.Time) bool {
	return !c.cfg.DisableLocalCache && n.age(now) > c.cfg.LocalLease
}

// renewLease makes one round trip on the connection holding copies of key
// (EXISTS key goes to the node and, with one connection per node, the
// connection its copies live on). Its answer renews the lease (end).
func (c *Client) renewLease(ctx context.Context, deadline time.Time, key string) error {
	return c.doBefore(ctx, deadline, cmdBuilder.Exists().Key(key).Build()).Error()
}

// renewSoon starts renewLease in the background, one at a time per node,
// once half of n's lease is gone, so a busy local tier keeps its lease
// without waiting.
func (c *Client) renewSoon(n *nodeBreaker, now time.Time, key string) {
	if n.age(now) <= c.cfg.LocalLease/2 || !n.probing.CompareAndSwap(false, true) {
		return
	}
	if !c.goBackground(func() {
		defer n.probing.Store(false)
		_ = c.renewLease(c.life, time.Time{}, key)
	}) {
		n.probing.Store(false)
	}
}

// cacheKey returns the key a cacheable command reads (its first
// argument), or "" for one without.
func cacheKey(cmd rueidis.Cacheable) string {
	if args := cmd.Commands(); len(args) > 1 {
		return args[1]
	}
	return ""
}

// plainRead rebuilds a cacheable read from its arguments (copied before
// rueidis recycled the command) as a plain read, which skips the local
// copy; rueidis.Cacheable of it is the cacheable read again.
func plainRead(args []string) rueidis.Completed {
	return cmdBuilder.Arbitrary(args[0]).Keys(args[1]).Args(args[2:]...).ReadOnly()
}

// writtenLog is the read-your-writes marks (rule 2 above).
type writtenLog struct {
	n   atomic.Int64  // len(keys): reads skip the lock while it is 0
	seq atomic.Uint64 // orders marks and the reads that start after them
	// keep is how long a copy made before a mark may live: the longest
	// local TTL any read has asked for (the copy is never kept longer).
	keep atomic.Int64
	mu   sync.Mutex
	// keys maps a marked key to the seq of its mark and when the mark may
	// be forgotten.
	keys map[string]writtenMark
}

type writtenMark struct {
	seq   uint64
	until time.Time
}

// MarkWritten records that this process wrote keys in Redis: the write
// has returned, or may have been applied (it timed out). Until a read
// that starts after this call goes to Redis, DoCache and DoMultiCache
// answer these keys from Redis, never from a local copy made before the
// write whose invalidation may still be on its way. Every write of a key
// that is read through the local tier must be marked before it returns to
// its caller.
func (c *Client) MarkWritten(keys ...string) {
	if len(keys) == 0 || c.cfg.DisableLocalCache {
		return
	}
	l := &c.written
	now := time.Now()
	s := l.seq.Add(1)
	until := now.Add(time.Duration(l.keep.Load()) + time.Second)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[string]writtenMark{}
	}
	for _, k := range keys {
		l.keys[k] = writtenMark{seq: s, until: until}
	}
	// Forget what can no longer matter (amortised: only as the log grows).
	if len(l.keys) > 64 && len(l.keys)&63 == 0 {
		for k, m := range l.keys {
			if now.After(m.until) {
				delete(l.keys, k)
			}
		}
	}
	l.n.Store(int64(len(l.keys)))
}

// reading notes that a read with local TTL ttl starts, and returns the
// point in the log it starts at.
func (l *writtenLog) reading(ttl time.Duration) uint64 {
	if d := int64(ttl); d > l.keep.Load() {
		for cur := l.keep.Load(); d > cur && !l.keep.CompareAndSwap(cur, d); cur = l.keep.Load() {
		}
	}
	return l.seq.Load()
}

// marked reports whether key has a mark, without the lock when the log is
// empty.
func (l *writtenLog) marked(key string) bool {
	if l.n.Load() == 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.keys[key]
	return ok && !time.Now().After(m.until)
}

// settled clears key's mark if it is older than seq: a round trip on the
// connection holding key's copies, sent after that mark, has been
// answered, so the invalidation of the marked write has been applied.
func (l *writtenLog) settled(key string, seq uint64) {
	if l.n.Load() == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if m, ok := l.keys[key]; ok && m.seq <= seq {
		delete(l.keys, key)
		l.n.Store(int64(len(l.keys)))
	}
}

// trust reports whether a read of key that started at since may use what
// rueidis returned (hit: a local copy, or another read in flight that it
// joined). A read that went to Redis after the mark clears it.
func (l *writtenLog) trust(key string, hit bool, since uint64) bool {
	if l.n.Load() == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.keys[key]
	switch {
	case !ok:
		return true
	case time.Now().After(m.until):
		// Every local copy made before the write has expired.
	case hit:
		return false
	case since < m.seq:
		// Concurrent with the write: good enough for this caller, but an
		// older copy may be installed yet.
		return true
	}
	delete(l.keys, key)
	l.n.Store(int64(len(l.keys)))
	return true
}

// lazyDeadline is a context that ends at deadline but arms a timer only
// when something waits on Done. A read the local tier answers never
// waits, so it costs no timer and, pooled, no allocation; one that goes to
// Redis arms it as context.WithDeadline would.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time
	mu       sync.Mutex
	armed    atomic.Bool
	ctx      context.Context
	cancel   context.CancelFunc
}

var lazyDeadlines = sync.Pool{New: func() any { return new(lazyDeadline) }}

// lazyDeadlineFor bounds ctx by the client's CommandTimeout from now, or
// by deadline when it is set and earlier. It returns nil when ctx's own
// deadline comes first (use ctx as it is). Release what it returns.
func (c *Client) lazyDeadlineFor(ctx context.Context, deadline time.Time) *lazyDeadline {
	dl := time.Now().Add(c.cfg.CommandTimeout)
	if !deadline.IsZero() && deadline.Before(dl) {
		dl = deadline
	}
	if cur, ok := ctx.Deadline(); ok && !cur.After(dl) {
		return nil
	}
	l := lazyDeadlines.Get().(*lazyDeadline)
	l.parent, l.deadline = ctx, dl
	return l
}

// context returns the context to use: l, or parent when l is nil.
func (l *lazyDeadline) context(parent context.Context) context.Context {
	if l == nil {
		return parent
	}
	return l
}

func (l *lazyDeadline) Deadline() (time.Time, bool) { return l.deadline, true }

func (l *lazyDeadline) Done() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.armed.Load() {
		l.ctx, l.cancel = context.WithDeadline(l.parent, l.deadline)
		l.armed.Store(true)
	}
	return l.ctx.Done()
}

func (l *lazyDeadline) Err() error {
	if l.armed.Load() {
		return l.ctx.Err()
	}
	if err := l.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(l.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (l *lazyDeadline) Value(key any) any { return l.parent.Value(key) }

// release ends l once the call that used it has returned. One that was
// never armed was never waited on, so nothing can hold it: it goes back to
// the pool. An armed one may still be referenced by what waited on it; it
// is cancelled and left to the collector.
func (l *lazyDeadline) release() {
	switch {
	case l == nil:
	case l.armed.Load():
		l.cancel()
	default:
		l.parent, l.deadline = nil, time.Time{}
		lazyDeadlines.Put(l)
	}
}
