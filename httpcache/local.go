package httpcache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// The local tier: lookups read entries with redisx DoCache, rueidis's
// server-assisted client-side cache (RESP3 CLIENT TRACKING). A copy held
// in this process answers a hit with no round trip; Redis pushes an
// invalidation when the key changes, and the copy lives no longer than
// the route's TTL nor the key's PTTL. rueidis drops a connection's copies
// when the connection is lost, and redisx refuses even local hits while
// its breaker is open. A connection can also hang without closing (Redis
// stalled, a network partition); rueidis notices only after its health
// check. So a local copy is served only while Redis answered this process
// within Config.LocalLease (liveness): hits past half the lease start one
// PING in the background, and past the whole lease they go to Redis.
//
// Read-your-writes. The invalidation push reaches this process on the
// connection that read the key, which is usually not the one the purge
// went out on, so it may arrive a moment after the purge returned. Within
// that moment this process must not serve the purged copy:
//
//   - tag purges (Invalidate, "ns:*", "ns:{id}") mark each tag's new epoch
//     in purgeLog before they return; a record carries the epochs it was
//     stored under, so a local copy stored before the purge is refused;
//   - a literal key UNLINK, and each key a glob purge (SCAN) deletes, is
//     marked in writtenLog: a local copy of it is not trusted (the lookup
//     asks Redis itself) until a lookup that started after the UNLINK
//     finds no local copy and reads Redis.

// writtenLog remembers keys this process deleted, for as long as a local
// copy made before the delete could live (the longest route lifetime).
type writtenLog struct {
	n   atomic.Int64  // len(keys): lookups skip the lock while it is 0
	seq atomic.Uint64 // orders deletes and the lookups that start after them
	mu  sync.Mutex
	// keys maps a deleted key to the seq of its delete and when the mark
	// may be forgotten.
	keys map[string]writtenMark
}

type writtenMark struct {
	seq   uint64
	until time.Time
}

// since returns the point in the log a lookup starts at.
func (l *writtenLog) since() uint64 { return l.seq.Load() }

// mark records that keys were deleted in Redis (the delete has returned).
// keep is how long a local copy made before it may live.
func (l *writtenLog) mark(keys []string, keep time.Duration) {
	if len(keys) == 0 {
		return
	}
	now := time.Now()
	s := l.seq.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[string]writtenMark{}
	}
	for _, k := range keys {
		l.keys[k] = writtenMark{seq: s, until: now.Add(keep)}
	}
	if len(l.keys) > 64 && len(l.keys)&63 == 0 {
		for k, m := range l.keys {
			if now.After(m.until) {
				delete(l.keys, k)
			}
		}
	}
	l.n.Store(int64(len(l.keys)))
}

// trust reports whether a lookup of key that started at since may use
// what DoCache returned (hit: a local copy, or another call's read in
// flight). A read that went to Redis after the delete clears the mark: from
// then on the local copy is the one it made.
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
		// Every local copy made before the delete has expired.
	case hit || since < m.seq:
		return false
	}
	delete(l.keys, key)
	l.n.Store(int64(len(l.keys)))
	return true
}

// lazyDeadline is a context that ends at deadline but arms a timer only
// when something waits on Done. A lookup the local tier answers never
// waits, so it costs no timer; one that goes to Redis arms it as
// context.WithDeadline would. Release it with release.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time
	armed    atomic.Bool
	once     sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
}

// withLazyDeadline returns ctx bounded by d from now, or nil when ctx's
// own deadline comes first (then use ctx as it is). Call release on the
// result when done; a nil *lazyDeadline releases nothing.
func withLazyDeadline(ctx context.Context, d time.Duration) *lazyDeadline {
	dl := time.Now().Add(d)
	if cur, ok := ctx.Deadline(); ok && !cur.After(dl) {
		return nil
	}
	return &lazyDeadline{parent: ctx, deadline: dl}
}

func (l *lazyDeadline) arm() {
	l.ctx, l.cancel = context.WithDeadline(l.parent, l.deadline)
	l.armed.Store(true)
}

func (l *lazyDeadline) Deadline() (time.Time, bool) { return l.deadline, true }

func (l *lazyDeadline) Done() <-chan struct{} {
	l.once.Do(l.arm)
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

func (l *lazyDeadline) release() {
	if l != nil && l.armed.Load() {
		l.cancel()
	}
}

// liveness tracks when Redis last answered this process, so the local tier
// serves only while the connection is known to work.
type liveness struct {
	heard   atomic.Int64 // unix ns when the last call that Redis answered started
	probing atomic.Bool
}

// answered records that a call started at start got Redis's answer.
// Storing an earlier time than the one held only shortens the lease.
func (l *liveness) answered(start time.Time) { l.heard.Store(start.UnixNano()) }

// fresh reports whether a local copy may be served at now, starting a
// background PING (at most one at a time) once half the lease has gone.
func (l *liveness) fresh(now time.Time, lease time.Duration, ping func(context.Context) error) bool {
	age := time.Duration(now.UnixNano() - l.heard.Load())
	if age > lease/2 && l.probing.CompareAndSwap(false, true) {
		go func() {
			defer l.probing.Store(false)
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), max(lease, time.Second))
			defer cancel()
			if ping(ctx) == nil {
				l.answered(start)
			}
		}()
	}
	return age <= lease
}
