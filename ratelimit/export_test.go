package ratelimit

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
