package redisx

import (
	"context"
	"testing"
	"time"
)

// TestWrittenLog pins the read-your-writes rule of the local tier
// (local.go, rule 2).
func TestWrittenLog(t *testing.T) {
	t.Parallel()
	c := &Client{}
	l := &c.written
	if !l.trust("k", true, l.reading(time.Minute)) {
		t.Fatal("an unmarked key: want trusted")
	}
	before := l.reading(time.Minute)
	c.MarkWritten("k")
	after := l.reading(time.Minute)
	if !l.marked("k") || l.marked("other") {
		t.Fatalf("marked(k) %v, marked(other) %v; want true, false", l.marked("k"), l.marked("other"))
	}
	cases := []struct {
		name  string
		key   string
		hit   bool
		since uint64
		want  bool
	}{
		{"a local copy, read after the write", "k", true, after, false},
		{"a local copy, read begun before the write", "k", true, before, false},
		{"a Redis read begun before the write (concurrent with it)", "k", false, before, true},
		{"another key's local copy", "other", true, after, true},
	}
	for _, tc := range cases {
		if got := l.trust(tc.key, tc.hit, tc.since); got != tc.want {
			t.Errorf("%s: trust = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !l.marked("k") {
		t.Fatal("a read begun before the write cleared the mark; an older copy may still be installed")
	}
	if !l.trust("k", false, after) {
		t.Fatal("a Redis read begun after the write: want trusted")
	}
	if l.marked("k") || l.trust("k", true, after) == false {
		t.Fatal("a Redis read begun after the write did not clear the mark")
	}
}

// TestWrittenLogForgets: a mark lives as long as a copy made before it
// could (the longest local TTL read so far, and a second), then goes.
func TestWrittenLogForgets(t *testing.T) {
	t.Parallel()
	c := &Client{}
	l := &c.written
	l.reading(10 * time.Millisecond)
	c.MarkWritten("k")
	if !l.marked("k") {
		t.Fatal("not marked")
	}
	l.mu.Lock()
	until := l.keys["k"].until
	l.mu.Unlock()
	if d := time.Until(until); d <= time.Second || d > time.Second+10*time.Millisecond {
		t.Fatalf("the mark lives %v; want the longest local TTL (10ms) plus a second", d)
	}
}

// TestLeaseOnlyMovesForward: an answer to an older command never shortens
// the lease a newer one gave; a lost connection ends it.
func TestLeaseOnlyMovesForward(t *testing.T) {
	t.Parallel()
	var l lease
	now := time.Now()
	l.answered(now, now)
	l.answered(now.Add(-time.Second), now)
	if age := l.age(now); age != 0 {
		t.Fatalf("age %v after an older answer; want 0", age)
	}
	l.lost()
	if age := l.age(now); age < time.Hour {
		t.Fatalf("age %v after the connection was lost; want the lease gone", age)
	}
}

// TestLazyDeadline: a deadline nobody waited on arms no timer and is
// reused; one that was waited on ends like context.WithDeadline.
func TestLazyDeadline(t *testing.T) {
	t.Parallel()
	c := &Client{cfg: Config{CommandTimeout: time.Second}}
	ctx := t.Context()
	l := c.lazyDeadlineFor(ctx, time.Time{})
	if l == nil {
		t.Fatal("no deadline for a context without one")
	}
	if dl, ok := l.Deadline(); !ok || time.Until(dl) > time.Second {
		t.Fatalf("deadline %v, %v; want within CommandTimeout", dl, ok)
	}
	if l.armed.Load() || l.Err() != nil {
		t.Fatal("armed or ended before anyone waited")
	}
	l.release()
	early := time.Now().Add(20 * time.Millisecond)
	l = c.lazyDeadlineFor(ctx, early)
	if dl, _ := l.Deadline(); !dl.Equal(early) {
		t.Fatalf("deadline %v; want the earlier one given, %v", dl, early)
	}
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done never closed")
	}
	if l.Err() == nil {
		t.Fatal("Err nil after the deadline passed")
	}
	l.release()
	tight, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if c.lazyDeadlineFor(tight, time.Time{}) != nil {
		t.Fatal("a lazy deadline for a context whose own deadline comes first")
	}
}
