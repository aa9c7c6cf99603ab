package session

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/theaterscriptpro/tsp/redisx"
)

// The local tier. Get and Touch first read the session and the user's
// epoch through rueidis's server-assisted client-side cache (redisx
// DoMultiCache; RESP3 CLIENT TRACKING): copies held in this process answer
// with no round trip, and Redis pushes an invalidation when either key
// changes (Delete, DeleteAll, Rotate, Update, a touch, expiry). The lookup
// is decided here only when that is safe; anything else runs the load
// script as before, which is the authority:
//
//   - alive: born in the current epoch, and before its idle and absolute
//     expiry by this process's clock plus localMargin, so a clock behind
//     Redis's cannot keep a session alive past what Redis allows; and the
//     local copy itself must have localMargin left, which rueidis bounds by
//     the key's PTTL, a duration no clock skew affects. Nothing is ever
//     extended locally.
//   - no write due: a touch runs the script once the last write is
//     TouchInterval old.
//   - not found: a key Redis reported missing (a local nil) is not found.
//
// Read-your-writes: the invalidation reaches this process on the
// connection that read the key, usually not the one a write went out on,
// so it can arrive a moment after the write returned. Every write here
// marks the keys it changed (writtenLog) before it returns; a local copy
// of a marked key is not trusted until a lookup that started after the
// write found no local copy and read Redis.
//
// A stalled Redis or a partition can leave a connection open, so its
// copies would never be invalidated: they are served only while Redis
// answered this process within Config.LocalLease (liveness).

// localMargin is how far from expiry a session must be for the local tier
// to call it alive: more than any round trip, and than the clock skew
// between this process and Redis we tolerate. Closer to the end, lookups
// go to the script, which decides with Redis TIME.
const localMargin = time.Second

// localRead is what the local tier could decide.
type localRead int

const (
	localUndecided localRead = iota // run the script
	localAlive
	localNotFound
)

// readLocal tries to decide a lookup from the local tier.
func (s *Store) readLocal(ctx context.Context, userID, hash string, touch bool) (Session, localRead, error) {
	sk, ek := s.sessionKey(userID, hash), s.epochKey(userID)
	since := s.written.since()
	start := time.Now()
	res := s.rdb.DoMultiCache(ctx,
		rueidis.CT(s.rdb.B().Get().Key(sk).Cache(), s.localTTL),
		rueidis.CT(s.rdb.B().Get().Key(ek).Cache(), s.localTTL))
	keys := [2]string{sk, ek}
	hits := 0
	for i, r := range res {
		if err := r.Error(); err != nil && !redisx.IsNil(err) {
			return Session{}, localUndecided, err
		}
		hit := r.IsCacheHit()
		if hit {
			hits++
		}
		// A read that went to Redis after a write here clears its mark.
		if !s.written.trust(keys[i], hit, since) {
			return Session{}, localUndecided, nil
		}
	}
	if hits < len(res) {
		s.live.answered(start)
	}
	if hits > 0 && !s.live.fresh(start, s.cfg.LocalLease, s.ping) {
		return Session{}, localUndecided, nil
	}
	v, err := res[0].ToString()
	if redisx.IsNil(err) {
		return Session{}, localNotFound, nil
	}
	if err != nil {
		return Session{}, localUndecided, nil
	}
	ep := int64(0)
	if e, err := res[1].ToString(); err == nil {
		if ep, err = strconv.ParseInt(e, 10, 64); err != nil {
			return Session{}, localUndecided, nil
		}
	} else if !redisx.IsNil(err) {
		return Session{}, localUndecided, nil
	}
	sess, born, err := parseStored(v, userID)
	if err != nil {
		return Session{}, localUndecided, nil // the script removes what it cannot read
	}
	now := start
	if s.cfg.Now != nil {
		now = s.cfg.Now()
	}
	soon := now.Add(localMargin)
	switch {
	case born != ep, !soon.Before(sess.IdleExpiresAt), !soon.Before(sess.ExpiresAt):
		// Dead, or nearly: the script decides with Redis TIME (and deletes it).
		return Session{}, localUndecided, nil
	case res[0].CachePXAT() >= 0 && res[0].CachePXAT() <= start.Add(localMargin).UnixMilli():
		// The key has less than the margin to live in Redis. (No expiry
		// at all means redisx's local cache is off: the read was Redis's.)
		return Session{}, localUndecided, nil
	case touch && now.Sub(sess.LastSeenAt) >= s.cfg.TouchInterval:
		return Session{}, localUndecided, nil
	}
	return sess, localAlive, nil
}

// writtenLog remembers keys this process wrote, for as long as a local
// copy made before the write may live (the local TTL).
type writtenLog struct {
	n    atomic.Int64  // len(keys): lookups skip the lock while it is 0
	seq  atomic.Uint64 // orders writes and the lookups that start after them
	mu   sync.Mutex
	keys map[string]writtenMark
	keep time.Duration
}

type writtenMark struct {
	seq   uint64
	until time.Time
}

// since returns the point in the log a lookup starts at.
func (l *writtenLog) since() uint64 { return l.seq.Load() }

// mark records that keys were written in Redis (the write has returned or
// may have been applied).
func (l *writtenLog) mark(keys ...string) {
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
		l.keys[k] = writtenMark{seq: s, until: now.Add(l.keep)}
	}
	// Forget what can no longer matter (amortised: only when the log grew).
	if len(l.keys) > 64 && len(l.keys)&63 == 0 {
		for k, m := range l.keys {
			if now.After(m.until) {
				delete(l.keys, k)
			}
		}
	}
	l.n.Store(int64(len(l.keys)))
}

// trust reports whether a lookup that started at since may use what the
// local tier returned for key (hit: a local copy, or a read another call
// had in flight). A read that went to Redis is always fresh enough; one
// that started after the write clears the mark.
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
		// Fresh, but another call may still install an older copy.
		return true
	}
	delete(l.keys, key)
	l.n.Store(int64(len(l.keys)))
	return true
}

// liveness tracks when Redis last answered this process, so the local tier
// serves only while the connection is known to work.
type liveness struct {
	heard   atomic.Int64 // unix ns when the last call Redis answered started
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
