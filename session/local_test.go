package session

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// twoInstances returns two stores (with managers) on two clients sharing
// one Redis and key prefix: two app instances.
func twoInstances(t *testing.T, cfg Config, edit ...func(*redisx.Config)) (a, b *Store, ma, mb *Manager, rdbB *redisx.Client) {
	t.Helper()
	rcfg := redistest.Config(t)
	for _, e := range edit {
		e(&rcfg)
	}
	var err error
	if a, err = NewStore(redistest.Connect(t, rcfg), cfg); err != nil {
		t.Fatal(err)
	}
	rdbB = redistest.Connect(t, rcfg)
	if b, err = NewStore(rdbB, cfg); err != nil {
		t.Fatal(err)
	}
	return a, b, newTestManager(t, a, ManagerConfig{}), newTestManager(t, b, ManagerConfig{}), rdbB
}

func requireStatus(m *Manager, tok string) int {
	r := httptest.NewRequest("GET", "/api/me", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return serve(m.RequireSession(&seen{}), r).Code
}

// heldLocally waits until tok's lookup on m costs no round trip on rdb.
func heldLocally(t *testing.T, m *Manager, rdb *redisx.Client, tok string) {
	t.Helper()
	for range 500 {
		before := rdb.RoundTrips()
		code := requireStatus(m, tok)
		if code != 200 {
			t.Fatalf("RequireSession: got %d, want 200", code)
		}
		if rdb.RoundTrips() == before {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the session never became local")
}

// TestOtherInstanceSeesEndWithin100ms: instance B answers a session from
// its local tier; once A's Delete or DeleteAll returns, B's next
// RequireSession is 401 within 100 ms (Redis's invalidation push).
func TestOtherInstanceSeesEndWithin100ms(t *testing.T) {
	t.Parallel()
	ends := []struct {
		name string
		end  func(s *Store, tok string, sess Session) error
	}{
		{"Delete", func(s *Store, tok string, _ Session) error { return s.Delete(context.Background(), tok) }},
		{"DeleteAll", func(s *Store, _ string, sess Session) error {
			_, err := s.DeleteAll(context.Background(), sess.UserID, "")
			return err
		}},
		{"DeleteByID", func(s *Store, _ string, sess Session) error {
			_, err := s.DeleteByID(context.Background(), sess.UserID, sess.ID)
			return err
		}},
		{"Rotate", func(s *Store, tok string, _ Session) error {
			_, _, err := s.Rotate(context.Background(), tok)
			return err
		}},
	}
	for _, e := range ends {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			a, _, ma, mb, rdbB := twoInstances(t, Config{}, longLease)
			var worst time.Duration
			for i := range 10 {
				tok, sess := mustCreate(t, a, NewSession{UserID: "u1"})
				heldLocally(t, ma, a.rdb, tok)
				heldLocally(t, mb, rdbB, tok)
				if err := e.end(a, tok, sess); err != nil {
					t.Fatal(err)
				}
				ended := time.Now()
				// The instance that ended it: at once.
				if code := requireStatus(ma, tok); code != http.StatusUnauthorized {
					t.Fatalf("round %d: instance A right after its own %s: got %d, want 401", i, e.name, code)
				}
				for {
					started := time.Now()
					if requireStatus(mb, tok) == http.StatusUnauthorized {
						break
					}
					lag := started.Sub(ended)
					worst = max(worst, lag)
					if lag > 100*time.Millisecond {
						t.Fatalf("round %d: instance B still signed the token in %v after %s returned on A, want within 100ms", i, lag, e.name)
					}
				}
			}
			t.Logf("longest B answered 200 after A's %s returned: %v", e.name, worst)
		})
	}
}

// TestWriterNeverServesOldCopy: every write on an instance is seen by that
// instance's next lookup, although Redis's invalidation reaches it on
// another connection a moment later. Without the write marks this fails
// within a few rounds.
func TestWriterNeverServesOldCopy(t *testing.T) {
	t.Parallel()
	s, rdb := newTestStore(t, Config{}, longLease)
	m := newTestManager(t, s, ManagerConfig{})
	ctx := context.Background()
	for i := range 40 {
		tok, sess := mustCreate(t, s, NewSession{UserID: "u1", Role: "r0"})
		heldLocally(t, m, rdb, tok)
		got, err := s.Update(ctx, tok, func(x *Session) { x.Role = "r1" })
		if err != nil {
			t.Fatal(err)
		}
		if now, err := s.Touch(ctx, tok); err != nil || now.Role != "r1" {
			t.Fatalf("round %d: Touch right after Update: role %q, err %v; want r1 (Update returned %q)", i, now.Role, err, got.Role)
		}
		heldLocally(t, m, rdb, tok)
		switch i % 3 {
		case 0:
			err = s.Delete(ctx, tok)
		case 1:
			_, err = s.DeleteAll(ctx, "u1", "")
		case 2:
			_, err = s.DeleteByID(ctx, "u1", sess.ID)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Touch(ctx, tok); !errors.Is(err, ErrNotFound) {
			t.Fatalf("round %d: Touch right after the session ended: got %v, want ErrNotFound", i, err)
		}
	}
}

// TestLocalNeverExtends: the local tier answers only well before expiry,
// by the store's clock, and leaves every write (touch) to the script.
func TestLocalNeverExtends(t *testing.T) {
	t.Parallel()
	clk := newClock()
	log := &commandLog{}
	s, _ := newTestStore(t, Config{Now: clk.Now, IdleTimeout: time.Hour, AbsoluteTimeout: 2 * time.Hour, TouchInterval: time.Minute},
		longLease, func(c *redisx.Config) { c.CommandHook = log.hook })
	ctx := context.Background()
	tok, _ := mustCreate(t, s, NewSession{UserID: "u1"})
	settle(t, s, log, tok)
	// Near the idle expiry: the script decides (and, touching, extends).
	clk.Advance(time.Hour - localMargin/2)
	_ = log.take()
	if _, err := s.Get(ctx, tok); err != nil {
		t.Fatal(err)
	}
	// The script: one EVALSHA, and its EVAL fallback on a server that has
	// not seen it yet (a fresh Sentinel master: nothing here loaded it).
	if got := log.take(); !slices.EqualFunc(got, [][]string{{"EVALSHA"}}, slices.Equal) &&
		!slices.EqualFunc(got, [][]string{{"EVALSHA"}, {"EVAL"}}, slices.Equal) {
		t.Fatalf("Get within the margin of the idle expiry: sent %v, want the script", got)
	}
	// Past the idle expiry by the store's clock: gone, though the key
	// still lives in Redis by the real clock.
	clk.Advance(localMargin)
	if _, err := s.Touch(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Touch past the idle expiry: got %v, want ErrNotFound", err)
	}
	if _, err := s.Touch(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Touch again: got %v, want ErrNotFound", err)
	}
}

// longLease gives a client a LocalLease longer than any test, so no
// background lease renewal shows among the commands a test counts (the
// lease itself is redisx's, tested there).
func longLease(cfg *redisx.Config) { cfg.LocalLease = time.Hour }
