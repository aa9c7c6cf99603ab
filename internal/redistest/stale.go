package redistest

import (
	"testing"
	"time"
)

// StaleWithin checks API.md's bound on serving what another instance (or
// a lost connection) made stale: it calls read until a read begun more
// than bound after changed is not stale, and fails tb for every read begun
// later than that which was stale. read reports whether what it got is
// the old value, and what it got, for the failure message. It logs when
// the last stale read began, the figure the fault tests print, and fails
// tb if reads are still stale 10 s after the change.
func StaleWithin(tb testing.TB, what string, changed time.Time, bound time.Duration, read func() (stale bool, got string)) {
	tb.Helper()
	deadline := changed.Add(bound)
	var lastStale time.Time
	late := 0
	for {
		began := time.Now()
		stale, got := read()
		if stale {
			lastStale = began
			if began.After(deadline) {
				late++
			}
		} else if began.After(deadline) {
			break
		}
		if time.Since(changed) > 10*time.Second {
			tb.Fatalf("%s: still %s 10 s after the change", what, got)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if lastStale.IsZero() {
		tb.Logf("%s: the old value was never served after the change (bound %v)", what, bound)
	} else {
		tb.Logf("%s: the last read that got the old value began %v after the change (bound %v)", what, lastStale.Sub(changed).Round(time.Microsecond), bound)
	}
	if late > 0 {
		tb.Errorf("%s: %d reads begun more than %v after the change got the old value", what, late, bound)
	}
}
