package session

import (
	"strconv"
	"testing"
	"time"
)

// TestActiveSessions: the gauge is the distinct sessions of the last
// complete window, repeats counted once; an idle window reports 0; the
// table is bounded.
func TestActiveSessions(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	a := newActiveSessions(func() time.Time { return now })
	for i := range 3 {
		a.found("u1", "h"+strconv.Itoa(i))
		a.found("u1", "h"+strconv.Itoa(i)) // the same session again
	}
	a.found("u2", "h0") // another user's session with the same hash part
	if n := a.count(); n != 0 {
		t.Fatalf("during the first window: %d; want 0 (no window complete yet)", n)
	}
	now = now.Add(activeWindow)
	if n := a.count(); n != 4 {
		t.Fatalf("after the first window: %d; want 4 distinct sessions", n)
	}
	a.found("u1", "h0")
	now = now.Add(activeWindow + time.Second)
	if n := a.count(); n != 1 {
		t.Fatalf("after the second window: %d; want 1", n)
	}
	now = now.Add(2 * activeWindow)
	if n := a.count(); n != 0 {
		t.Fatalf("after idle windows: %d; want 0", n)
	}
	for i := range maxActiveTracked + 10 {
		a.found("u", strconv.Itoa(i))
	}
	if len(a.seen) != maxActiveTracked {
		t.Fatalf("%d sessions remembered; want the bound %d", len(a.seen), maxActiveTracked)
	}
	now = now.Add(activeWindow)
	if n := a.count(); n != maxActiveTracked {
		t.Fatalf("past the bound: %d; want the bound %d (a lower bound)", n, maxActiveTracked)
	}
}
