package session

import (
	"context"
	"strconv"
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
// Whether a local copy may be served at all is redisx's rule, not this
// package's (redisx local.go): the connection holding it answered within
// redisx.Config.LocalLease, and this process has not written the key since
// the copy was made. Every write script here goes through Store.write,
// which marks its keys (redisx MarkWritten) before it returns; what a
// script names in its reply (evicted or deleted sessions) is marked too.

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
	start := time.Now()
	res := s.rdb.DoMultiCache(ctx,
		rueidis.CT(s.rdb.B().Get().Key(sk).Cache(), s.localTTL),
		rueidis.CT(s.rdb.B().Get().Key(ek).Cache(), s.localTTL))
	for _, r := range res {
		if err := r.Error(); err != nil && !redisx.IsNil(err) {
			return Session{}, localUndecided, err
		}
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
