package session

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/faultproxy"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// TestRedisOutage runs the middleware against a throwaway Redis that is
// paused (hung connections: the hardest outage), resumed, killed and
// started again. The local tier answers a paused Redis's sessions for at
// most the lease, and a killed one's not at all (rueidis drops a lost
// connection's copies). A route that requires a session answers 503 within the
// lookup deadline and never lets a request through; an optional route
// goes on anonymous; both recover with no action by anyone.
func TestRedisOutage(t *testing.T) {
	const lease = 150 * time.Millisecond
	t.Parallel()
	srv := redistest.StartServer(t)
	rdb := redistest.Connect(t, redisx.Config{
		Addrs:     []string{srv.Addr},
		KeyPrefix: redistest.Prefix(t),
		// Far longer than the lookup deadline: if the middleware did not
		// bound the lookup itself, requests would hang this long.
		CommandTimeout: 10 * time.Second,
		DialTimeout:    10 * time.Second,
		LocalLease:     lease,
	})
	s, err := NewStore(rdb, Config{})
	if err != nil {
		t.Fatal(err)
	}
	const deadline = 300 * time.Millisecond
	// Scheduling on a shared machine is noisy; the bound only has to tell
	// the deadline from the 10s command and dial timeouts.
	const slack = 2 * time.Second
	m := newTestManager(t, s, ManagerConfig{LookupTimeout: deadline})
	tok, sess := mustCreate(t, s, NewSession{UserID: "u1"})

	do := func(mw func(http.Handler) http.Handler, tok string) (*httptest.ResponseRecorder, *seen, time.Duration) {
		r := httptest.NewRequest("GET", "/api/me", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		h := &seen{}
		start := time.Now()
		w := serve(mw(h), r)
		return w, h, time.Since(start)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if cond() {
				return
			}
			if time.Now().After(end) {
				t.Fatalf("%s: did not happen within 15s", what)
			}
		}
	}
	wantDown := func(when string) {
		t.Helper()
		for range 3 {
			w, h, took := do(m.RequireSession, tok)
			wantProblem(t, w, http.StatusServiceUnavailable)
			if h.called {
				t.Fatalf("%s: a required-session route let the request through", when)
			}
			if w.Header().Get("Retry-After") == "" {
				t.Errorf("%s: 503 without Retry-After", when)
			}
			t.Logf("%s: 503 in %v", when, took)
			if took > deadline+slack {
				t.Errorf("%s: 503 after %v, want within %v (+%v slack)", when, took, deadline, slack)
			}
			w, h, took = do(m.LoadSession, tok)
			if w.Code != 200 || !h.called || h.ok {
				t.Errorf("%s: optional route: got %d, called %v, session %v; want 200, anonymous", when, w.Code, h.called, h.ok)
			}
			if took > deadline+slack {
				t.Errorf("%s: optional route took %v, want within %v (+%v slack)", when, took, deadline, slack)
			}
		}
	}

	if w, h, _ := do(m.RequireSession, tok); w.Code != 200 || h.s.ID != sess.ID {
		t.Fatalf("before the outage: got %d, want 200", w.Code)
	}

	// localStops waits for the local tier to stop answering after the
	// fault began at since: it may answer for at most LocalLease after
	// Redis last answered (a paused Redis keeps its connections open, so
	// nothing else drops it; a killed one's closed connections may not be
	// seen before the next lookup), then lookups go to Redis and fail
	// within the deadline.
	localStops := func(fault string, since time.Time) {
		t.Helper()
		waitFor("the local tier to stop answering", func() bool {
			w, _, _ := do(m.RequireSession, tok)
			if w.Code == 200 && time.Since(since) > lease+slack {
				t.Fatalf("%s Redis: the local tier still answers after %v, want at most the lease (%v)", fault, time.Since(since), lease)
			}
			return w.Code == http.StatusServiceUnavailable
		})
		t.Logf("%s: local answers stopped after %v (lease %v)", fault, time.Since(since), lease)
	}

	srv.Pause()
	localStops("paused", time.Now())
	wantDown("paused")
	srv.Resume()
	// Redis kept the session: the same token works again, untouched by us.
	waitFor("the session works after resume", func() bool {
		w, h, _ := do(m.RequireSession, tok)
		return w.Code == 200 && h.s.ID == sess.ID
	})

	srv.Kill()
	localStops("killed", time.Now())
	wantDown("killed")
	srv.Start(t) // an empty server on the same port
	var fresh string
	waitFor("a new session can be made after restart", func() bool {
		var err error
		fresh, _, err = s.Create(context.Background(), NewSession{UserID: "u1"})
		return err == nil
	})
	if w, h, _ := do(m.RequireSession, fresh); w.Code != 200 || !h.ok {
		t.Fatalf("new session after restart: got %d, want 200", w.Code)
	}
	// The restarted server lost its data (no persistence): the old token
	// is unknown now, which is 401, not 503.
	if w, _, _ := do(m.RequireSession, tok); w.Code != http.StatusUnauthorized {
		t.Fatalf("old session on an empty server: got %d, want 401", w.Code)
	}
}

// TestHungInstanceRefusesEndedSessionWithin100ms: instance A holds a
// session in its local tier when its connection to Redis is black-holed
// (no RST: the invalidation is held in the network). Instance B, on a
// healthy connection, ends the session with Delete, DeleteAll or Rotate.
// No request on A that begins more than API.md's 100 ms (redisx's
// LocalLease) after B's call returned is answered 200; the figure is
// printed.
func TestHungInstanceRefusesEndedSessionWithin100ms(t *testing.T) {
	t.Parallel()
	for _, end := range []struct {
		name string
		run  func(b *Store, tok string) error
	}{
		{"Delete", func(b *Store, tok string) error { return b.Delete(context.Background(), tok) }},
		{"DeleteAll", func(b *Store, _ string) error {
			_, err := b.DeleteAll(context.Background(), "u1", "")
			return err
		}},
		{"Rotate", func(b *Store, tok string) error {
			_, _, err := b.Rotate(context.Background(), tok)
			return err
		}},
	} {
		t.Run(end.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.StartServer(t)
			px := faultproxy.Start(t, srv.Addr)
			acfg := redistest.At(redistest.Config(t), px.Addr())
			acfg.CommandTimeout = 200 * time.Millisecond
			bcfg := redistest.At(acfg, srv.Addr)
			rdbA := redistest.Connect(t, acfg)
			a, err := NewStore(rdbA, Config{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := NewStore(redistest.Connect(t, bcfg), Config{})
			if err != nil {
				t.Fatal(err)
			}
			ma := newTestManager(t, a, ManagerConfig{})
			tok, _ := mustCreate(t, b, NewSession{UserID: "u1"})
			heldLocally(t, ma, rdbA, tok)
			px.Hang()
			t.Cleanup(px.Reset)
			if err := end.run(b, tok); err != nil {
				t.Fatal(err)
			}
			redistest.StaleWithin(t, end.name+": a session ended elsewhere, on a hung instance", time.Now(), 100*time.Millisecond, func() (bool, string) {
				code := requireStatus(ma, tok)
				return code == 200, fmt.Sprintf("status %d", code)
			})
			// Never again, not even after the hang ends.
			px.Reset()
			for range 50 {
				if code := requireStatus(ma, tok); code == 200 {
					t.Fatalf("%s: A honoured the ended session again after the hang ended", end.name)
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
}

// TestHungClusterMasterRefusesEndedSessionWithin100ms is the test above on
// Redis Cluster, where liveness is kept per master: instance A reaches the
// master that owns the user's sessions through a proxy that then
// black-holes, and the other masters directly (they stay healthy and keep
// answering A's other calls). Instance B ends the session with Delete. No
// request on A that begins more than 100 ms after B's call returned is
// answered 200, under the hang or after it ends.
func TestHungClusterMasterRefusesEndedSessionWithin100ms(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	bcfg := c.Config(t)
	rdbB := redistest.Connect(t, bcfg)
	b, err := NewStore(rdbB, Config{})
	if err != nil {
		t.Fatal(err)
	}
	hung := c.MasterOf(t, b.epochKey("u1"))
	if hung == nil {
		t.Fatal("no master owns u1's sessions")
	}
	var other string // a key of a healthy master, for A's other traffic
	for i := 0; other == ""; i++ {
		if k := rdbB.Keys().Tagged("probe", fmt.Sprint(i)); c.MasterOf(t, k) != hung {
			other = k
		}
	}
	px := faultproxy.Start(t, hung.Addr)
	proxied := make(chan struct{}, 1)
	acfg := bcfg
	acfg.CommandTimeout = 200 * time.Millisecond
	acfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == hung.Addr { // as CLUSTER SLOTS announces it
			addr = px.Addr()
			select {
			case proxied <- struct{}{}:
			default:
			}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	rdbA := redistest.Connect(t, acfg)
	t.Cleanup(px.Reset)
	a, err := NewStore(rdbA, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ma := newTestManager(t, a, ManagerConfig{})
	tok, _ := mustCreate(t, b, NewSession{UserID: "u1"})
	heldLocally(t, ma, rdbA, tok)
	select {
	case <-proxied:
	default:
		t.Fatalf("A never dialled %s through the proxy: the hang would test nothing", hung.Addr)
	}
	px.Hang()
	if err := b.Delete(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	redistest.StaleWithin(t, "Cluster: a session ended elsewhere, its master hung for this instance", time.Now(), 100*time.Millisecond, func() (bool, string) {
		code := requireStatus(ma, tok)
		return code == 200, fmt.Sprintf("status %d", code)
	})
	// The healthy masters still answer A while the hang lasts.
	for i := range 20 {
		if err := rdbA.Set(context.Background(), other, []byte("x"), time.Minute); err != nil {
			t.Fatalf("Set #%d on a healthy master under the hang: %v", i, err)
		}
	}
	// Never again, not even after the hang ends.
	late := 0
	for range 50 {
		if requireStatus(ma, tok) == 200 {
			late++
		}
		time.Sleep(2 * time.Millisecond)
	}
	px.Reset()
	for range 100 {
		if requireStatus(ma, tok) == 200 {
			late++
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("Cluster: %d of 150 requests after the bound (under the hang and after it) were answered 200", late)
	if late > 0 {
		t.Fatalf("A honoured the ended session %d times after the bound", late)
	}
}
