package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/redisx"
)

// commandLog records the command names of every round trip.
type commandLog struct {
	mu    sync.Mutex
	trips [][]string
}

func (l *commandLog) hook(names []string) {
	l.mu.Lock()
	l.trips = append(l.trips, slices.Clone(names))
	l.mu.Unlock()
}

func (l *commandLog) take() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.trips
	l.trips = nil
	return t
}

// TestRoundTripsPerOperation counts what each operation sends to Redis:
// a lookup (Get, Touch, RequireSession, LoadSession) costs nothing when
// the local tier holds the session and no touch is due, one round trip
// (two GETs in one pipeline) the first time, and one EVALSHA when a touch
// is due; every write is one EVALSHA; Update is a lookup plus one
// EVALSHA; a malformed token costs nothing.
func TestRoundTripsPerOperation(t *testing.T) {
	t.Parallel()
	log := &commandLog{}
	clk := newClock()
	s, _ := newTestStore(t, Config{Now: clk.Now}, longLease, func(c *redisx.Config) { c.CommandHook = log.hook })
	m := newTestManager(t, s, ManagerConfig{})
	ctx := context.Background()
	var tok string
	var sess Session
	// The warm-up runs as other users: a DeleteAll's invalidation of the
	// user's epoch copy may land after the counted pass has begun, and the
	// counted pass must start with nothing of its user held. Sixteen of
	// them, so every Cluster master has the scripts loaded (a NOSCRIPT
	// fallback is not the operation's cost).
	var uid string
	request := func(mw func(http.Handler) http.Handler) error {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		h := &seen{}
		if w := serve(mw(h), r); w.Code != 200 || !h.ok {
			return fmt.Errorf("got %d, session %v", w.Code, h.ok)
		}
		return nil
	}
	evalsha := [][]string{{"EVALSHA"}}
	ops := []struct {
		name   string
		settle bool       // let the last write's invalidation land first
		want   [][]string // the command names of each round trip
		run    func() error
	}{
		{"Create", false, evalsha, func() (err error) { tok, sess, err = s.Create(ctx, NewSession{UserID: uid}); return err }},
		{"Get, first", false, [][]string{{"GET", "GET"}}, func() error { _, err := s.Get(ctx, tok); return err }},
		{"Get", false, nil, func() error { _, err := s.Get(ctx, tok); return err }},
		{"Touch without write", false, nil, func() error { _, err := s.Touch(ctx, tok); return err }},
		{"RequireSession", false, nil, func() error { return request(m.RequireSession) }},
		{"LoadSession", false, nil, func() error { return request(m.LoadSession) }},
		{"Touch with write", false, evalsha, func() error { clk.Advance(2 * time.Minute); _, err := s.Touch(ctx, tok); return err }},
		{"Update", true, evalsha, func() error { _, err := s.Update(ctx, tok, func(x *Session) { x.Role = "r" }); return err }},
		{"List", false, evalsha, func() error { _, err := s.List(ctx, uid); return err }},
		{"Rotate", false, evalsha, func() (err error) { tok, _, err = s.Rotate(ctx, tok); return err }},
		{"DeleteByID", false, evalsha, func() error { _, err := s.DeleteByID(ctx, uid, sess.ID); return err }},
		{"Delete", false, evalsha, func() error { return s.Delete(ctx, tok) }},
		{"DeleteAll", false, evalsha, func() error { _, err := s.DeleteAll(ctx, uid, ""); return err }},
		{"Get malformed", false, nil, func() error { _, _ = s.Get(ctx, "u1.short"); return nil }},
	}
	// Load every script once, so NOSCRIPT fallbacks do not count.
	for i := range 16 {
		uid = "warm-up-" + strconv.Itoa(i)
		for _, op := range ops {
			if err := op.run(); err != nil {
				t.Fatalf("warm-up %s: %v", op.name, err)
			}
		}
	}
	uid = "u1"
	for _, op := range ops {
		// A write's invalidation reaches the local tier a moment after the
		// write: let it land (and the lookup re-read), so the count is the
		// operation's own.
		if op.settle {
			settle(t, s, log, tok)
		}
		_ = log.take()
		if err := op.run(); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		if got := log.take(); !slices.EqualFunc(got, op.want, slices.Equal) {
			t.Errorf("%s: sent %v, want %v", op.name, got, op.want)
		}
	}
}

// settle reads tok until a read costs no round trip (its local copies are
// current), or the session is gone.
func settle(tb testing.TB, s *Store, log *commandLog, tok string) {
	tb.Helper()
	for range 200 {
		_ = log.take()
		_, err := s.Get(context.Background(), tok)
		if len(log.take()) == 0 || errors.Is(err, ErrNotFound) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	tb.Fatalf("the local tier never settled on %s", Fingerprint(tok))
}

// TestMemoryPerSession measures what a session costs Redis (MEMORY
// USAGE): the session value plus its share of the user's index and epoch.
// Run with -v for the figures the README quotes.
func TestMemoryPerSession(t *testing.T) {
	t.Parallel()
	s, rdb := newTestStore(t, Config{})
	ctx := context.Background()
	usage := func(key string) int64 {
		n, err := rdb.Do(ctx, rdb.B().MemoryUsage().Key(key).Samples(0).Build()).AsInt64()
		if err != nil {
			t.Fatalf("MEMORY USAGE %s: %v", key, err)
		}
		return n
	}
	ua := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
	ns := func(uid string) NewSession {
		return NewSession{UserID: uid, Email: "someone@example.com", Role: "producer", UserAgent: ua, IP: "203.0.113.42",
			Attrs: map[string]string{"name": "Someone Example", "createdAt": "2025-01-01T00:00:00Z"}}
	}
	// One session per user (the common case), then many for one user.
	const users = 50
	var hashBytes, indexBytes int64
	for i := range users {
		uid := "memuser" + strconv.Itoa(i)
		tok, _ := mustCreate(t, s, ns(uid))
		hashBytes += usage(s.sessionKey(uid, hashOfToken(t, tok)))
		indexBytes += usage(s.indexKey(uid))
	}
	var manyHash int64
	for range 20 {
		tok, _ := mustCreate(t, s, ns("many"))
		manyHash += usage(s.sessionKey("many", hashOfToken(t, tok)))
	}
	manyIndex := usage(s.indexKey("many"))
	perSingle := (hashBytes + indexBytes) / users
	perMany := (manyHash + manyIndex) / 20
	t.Logf("Redis memory per session (MEMORY USAGE, %d-byte key prefix): one per user %d bytes (value %d + index %d); 20 for one user %d bytes each (value %d + index share %d)",
		len(rdb.Keys().Prefix()), perSingle, hashBytes/users, indexBytes/users, perMany, manyHash/20, manyIndex/20)
	// A generous ceiling: it fails if a change makes sessions bloat.
	if perSingle <= 0 || perSingle > 1000 || perMany > 1000 {
		t.Fatalf("bytes per session: got %d and %d, want 1..1000", perSingle, perMany)
	}
}

// benchTokens creates one session for each of n users.
func benchTokens(b *testing.B, s *Store, n int) []string {
	b.Helper()
	toks := make([]string, n)
	for i := range toks {
		toks[i], _ = mustCreate(b, s, NewSession{UserID: "bench" + strconv.Itoa(i), Email: "a@example.com", Role: "producer",
			UserAgent: "Mozilla/5.0", IP: "203.0.113.1", Attrs: map[string]string{"name": "A"}})
	}
	return toks
}

func reportRoundTrips(b *testing.B, rdb *redisx.Client, before uint64) {
	b.ReportMetric(float64(rdb.RoundTrips()-before)/float64(b.N), "roundtrips/op")
}

// runParallelTokens runs fn over the tokens, each goroutine on its own.
func runParallelTokens(b *testing.B, toks []string, fn func(tok string) error) {
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		for pb.Next() {
			if err := fn(toks[i%len(toks)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkTouch is the hot path: the lookup with touch every signed-in
// request makes; within the touch interval it is answered by the local
// tier (0 round trips but a background EXISTS every half redisx LocalLease).
func BenchmarkTouch(b *testing.B) {
	s, rdb := newTestStore(b, Config{})
	toks := benchTokens(b, s, 256)
	ctx := context.Background()
	for _, tok := range toks { // fill the local tier
		if _, err := s.Touch(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	before := rdb.RoundTrips()
	runParallelTokens(b, toks, func(tok string) error { _, err := s.Touch(ctx, tok); return err })
	reportRoundTrips(b, rdb, before)
}

// BenchmarkTouchNoLocalCache is BenchmarkTouch with redisx's local cache
// off: every lookup reads the session and the epoch (one round trip).
func BenchmarkTouchNoLocalCache(b *testing.B) {
	s, rdb := newTestStore(b, Config{}, func(c *redisx.Config) { c.DisableLocalCache = true })
	toks := benchTokens(b, s, 256)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	before := rdb.RoundTrips()
	runParallelTokens(b, toks, func(tok string) error { _, err := s.Touch(ctx, tok); return err })
	reportRoundTrips(b, rdb, before)
}

// BenchmarkTouchWrite makes every lookup extend the idle expiry.
func BenchmarkTouchWrite(b *testing.B) {
	s, rdb := newTestStore(b, Config{TouchInterval: time.Millisecond})
	toks := benchTokens(b, s, 256)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	before := rdb.RoundTrips()
	runParallelTokens(b, toks, func(tok string) error { _, err := s.Touch(ctx, tok); return err })
	reportRoundTrips(b, rdb, before)
}

// BenchmarkRequireSession is the middleware end to end.
func BenchmarkRequireSession(b *testing.B) {
	s, rdb := newTestStore(b, Config{})
	m := newTestManager(b, s, ManagerConfig{})
	toks := benchTokens(b, s, 256)
	h := m.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, tok := range toks { // fill the local tier
		if _, err := s.Touch(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	before := rdb.RoundTrips()
	runParallelTokens(b, toks, func(tok string) error {
		r := httptest.NewRequest("GET", "/api/me", nil)
		r.AddCookie(&http.Cookie{Name: DefaultCookieName, Value: tok})
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Errorf("status %d", w.Code)
		}
		return nil
	})
	reportRoundTrips(b, rdb, before)
}

func BenchmarkCreate(b *testing.B) {
	s, rdb := newTestStore(b, Config{})
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	before := rdb.RoundTrips()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			uid := "c" + strconv.Itoa(int(n.Add(1)%4096))
			if _, _, err := s.Create(ctx, NewSession{UserID: uid, Email: "a@example.com", Role: "producer"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRoundTrips(b, rdb, before)
}

func BenchmarkParseToken(b *testing.B) {
	tok, _ := mintToken("abcdefghijklmnop")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := parseToken(tok); !ok {
			b.Fatal("parse failed")
		}
	}
}
