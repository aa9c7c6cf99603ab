package session

import (
	"hash/maphash"
	"sync"
	"time"
)

// activeWindow is the span over which a Store counts the distinct sessions
// it found: session_active is the count of the last complete window.
const activeWindow = 5 * time.Minute

// maxActiveTracked bounds the sessions one window remembers (8 bytes each
// in a map: about 2 MiB at the bound). Past it the count is a lower bound.
const maxActiveTracked = 100_000

// activeSessions counts the distinct sessions a Store found (successful
// lookups) per window of activeWindow, keeping only a hash of each
// session's key part, never a token. It answers "how many sessions are in
// use here": a global count would need one key that every session write
// touches (a hot spot on Cluster) or a scan of the keyspace. A session
// used on two instances counts on both.
type activeSessions struct {
	seed maphash.Seed
	now  func() time.Time

	mu      sync.RWMutex
	started time.Time           // of the current window
	seen    map[uint64]struct{} // sessions found in it
	last    int                 // distinct sessions of the last complete window
}

func newActiveSessions(now func() time.Time) *activeSessions {
	return &activeSessions{seed: maphash.MakeSeed(), now: now, started: now(), seen: map[uint64]struct{}{}}
}

// found records a successful lookup of the session whose user is userID
// and whose token hash is hash.
func (a *activeSessions) found(userID, hash string) {
	// Two string hashes mixed, not one of a concatenation: no allocation
	// on the lookup path.
	k := maphash.String(a.seed, userID) ^ maphash.String(a.seed, hash)*0x9e3779b97f4a7c15
	now := a.now()
	// Most lookups are of a session already seen in this window: a read
	// lock, so concurrent lookups do not queue for one another.
	a.mu.RLock()
	_, seen := a.seen[k]
	current := now.Sub(a.started) < activeWindow
	a.mu.RUnlock()
	if seen && current {
		return
	}
	a.mu.Lock()
	a.rotateLocked()
	if len(a.seen) < maxActiveTracked {
		a.seen[k] = struct{}{}
	}
	a.mu.Unlock()
}

// count returns the distinct sessions found in the last complete window.
func (a *activeSessions) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rotateLocked()
	return a.last
}

// rotateLocked ends the current window when it is over; a window with no
// lookups at all ends the same way (two idle windows report 0).
func (a *activeSessions) rotateLocked() {
	el := a.now().Sub(a.started)
	if el < activeWindow {
		return
	}
	a.last = len(a.seen)
	if el >= 2*activeWindow {
		// The current window ended more than a window ago: the last
		// complete one saw no lookup (one would have rotated it).
		a.last = 0
	}
	a.started = a.started.Add(el / activeWindow * activeWindow)
	clear(a.seen)
}
