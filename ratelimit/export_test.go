package ratelimit

import "time"

// SetTestNow drives l's scripts with an injected time in µs instead of
// Redis TIME. Only tests can reach it; production always uses TIME.
func SetTestNow(l *Limiter, now func() int64) { l.testNow = now }

// BlockedLen is how many keys l's local block cache holds.
func BlockedLen(l *Limiter) int {
	if l.blocked == nil {
		return 0
	}
	return l.blocked.len()
}

// FallbackLen is how many keys l's in-memory fallback tracks.
func FallbackLen(l *Limiter) int {
	if l.fallback == nil {
		return 0
	}
	l.fallback.mu.Lock()
	defer l.fallback.mu.Unlock()
	return len(l.fallback.m)
}

// LeaseBounds reports, for a decision spent from a lease, the µs on
// Redis's clock when the lease was granted and when its bucket ends.
func LeaseBounds(d Decision) (grant, end int64, ok bool) {
	if d.lease == nil {
		return 0, 0, false
	}
	return d.lease.grant, d.lease.end, true
}

// LeasedUnits is how many units l holds in leases, and in how many leases.
func LeasedUnits(l *Limiter) (units, leases int) {
	if l.leases == nil {
		return 0, 0
	}
	for i := range l.leases.shards {
		s := &l.leases.shards[i]
		s.mu.RLock()
		for _, e := range s.m {
			e.mu.Lock()
			if e.lease != nil {
				units += e.lease.left
				leases++
			}
			e.mu.Unlock()
		}
		s.mu.RUnlock()
	}
	return units, leases
}

// LeaseKeys is how many keys l tracks for leasing.
func LeaseKeys(l *Limiter) int {
	if l.leases == nil {
		return 0
	}
	n := 0
	for i := range l.leases.shards {
		s := &l.leases.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// LeaseLeft reports key's lease: the units left and how long it may still
// be spent, on this process's clock.
func LeaseLeft(l *Limiter, key string) (units int, left time.Duration, ok bool) {
	if l.leases == nil {
		return 0, 0, false
	}
	e := l.leases.lookup(key)
	if e == nil {
		return 0, 0, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lease == nil {
		return 0, 0, false
	}
	return e.lease.left, time.Duration(e.lease.until - l.mono()), true
}
