package httpcache

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/theaterscriptpro/tsp/internal/faultproxy"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// versioned serves "v=<n>" from a shared counter, the "database".
func versioned(v *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "v=%d", v.Load())
	})
}

// TestHitRoundTrips pins the cost of a hit: the miss that stores the entry
// and the first read of it go to Redis; every hit after that is answered
// by the local tier with no round trip at all.
func TestHitRoundTrips(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var names []string
	rdb := redistest.Client(t, func(cfg *redisx.Config) {
		// The lease outlives the test: no background renewal counts here.
		cfg.LocalLease = time.Hour
		cfg.CommandHook = func(n []string) {
			mu.Lock()
			names = append(names, n...)
			mu.Unlock()
		}
	})
	c := newCache(t, rdb, Config{})
	mux := mount(c, "GET /s/{id}", Route{Key: Resource("script", "id")}, okHandler("x"))
	wantXCache(t, get(t, mux, "/s/1"), "MISS")
	before := rdb.RoundTrips()
	wantXCache(t, get(t, mux, "/s/1"), "HIT")
	if got := rdb.RoundTrips() - before; got > 1 {
		t.Fatalf("first hit: %d round trips, want at most 1 (one GET; none if the read after the store was already local)", got)
	}
	// Let the store's invalidation land: from then on the copy is local.
	eventually(t, "a local hit", func() bool {
		before := rdb.RoundTrips()
		get(t, mux, "/s/1")
		return rdb.RoundTrips() == before
	})
	mu.Lock()
	names = nil
	mu.Unlock()
	before = rdb.RoundTrips()
	for range 100 {
		wantXCache(t, get(t, mux, "/s/1"), "HIT")
	}
	mu.Lock()
	defer mu.Unlock()
	if got := rdb.RoundTrips() - before; got != 0 || len(names) != 0 {
		t.Fatalf("100 local hits: %d round trips %v, want 0", got, names)
	}
}

// TestLocalCopyBoundedByPTTL: rueidis keeps a local copy no longer than
// the key's PTTL in Redis, however long the TTL asked for.
func TestLocalCopyBoundedByPTTL(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ctx := context.Background()
	key := rdb.Keys().Tagged("script", "1")
	if err := rdb.Set(ctx, key, []byte("x"), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	read := func() rueidis.RedisResult {
		return rdb.DoMultiCache(ctx, rueidis.CT(rdb.B().Get().Key(key).Cache(), time.Hour))[0]
	}
	first := read()
	pttl, err := rdb.Do(ctx, rdb.B().Pttl().Key(key).Build()).AsInt64()
	if err != nil || first.Error() != nil {
		t.Fatal(err, first.Error())
	}
	left := time.Until(time.UnixMilli(first.CachePXAT()))
	if left <= 0 || left > time.Duration(pttl+20)*time.Millisecond {
		t.Fatalf("local copy lives %v more, want at most the key's PTTL %dms (asked for 1h)", left, pttl)
	}
	eventually(t, "a local hit", func() bool { return read().IsCacheHit() })
	time.Sleep(time.Until(time.UnixMilli(first.CachePXAT())) + 20*time.Millisecond)
	if r := read(); r.IsCacheHit() || !redisx.IsNil(r.Error()) {
		t.Fatalf("after the key's PTTL: hit %v, err %v; want a read from Redis and a nil reply", r.IsCacheHit(), r.Error())
	}
}

// TestNoHitPastTTL: no entry is served past its TTL, by the real clock
// (Redis's TTL, the local copy's and the record's age agree) or by a fake
// app clock that runs ahead of them.
func TestNoHitPastTTL(t *testing.T) {
	t.Parallel()
	t.Run("real clock", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, redistest.Client(t, longLease), Config{})
		const ttl = 300 * time.Millisecond
		var v atomic.Int64
		mux := mount(c, "GET /s/{id}", Route{Key: Resource("script", "id"), TTL: ttl}, versioned(&v))
		wantXCache(t, get(t, mux, "/s/1"), "MISS")
		stored := time.Now() // after the store: an upper bound of its time
		v.Add(1)             // entries stored later say v=1
		hits := 0
		for time.Since(stored) < 3*ttl {
			started := time.Now() // before the age check, after the store
			w := get(t, mux, "/s/1")
			if w.Header().Get("X-Cache") == "HIT" && w.Body.String() == "v=0" {
				if age := started.Sub(stored); age > ttl {
					t.Fatalf("the first entry was a HIT requested %v after its store, past the %v TTL", age, ttl)
				}
				hits++
			}
			time.Sleep(2 * time.Millisecond)
		}
		if hits == 0 {
			t.Fatal("no hit at all: the test proved nothing")
		}
	})
	t.Run("fake clock", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock()
		rdb := redistest.Client(t, longLease)
		c := newCache(t, rdb, Config{Now: clk.Now})
		var v atomic.Int64
		mux := mount(c, "GET /s/{id}", Route{Key: Resource("script", "id"), TTL: time.Minute}, versioned(&v))
		get(t, mux, "/s/1")
		eventually(t, "a local hit", func() bool {
			before := rdb.RoundTrips()
			wantXCache(t, get(t, mux, "/s/1"), "HIT")
			return rdb.RoundTrips() == before
		})
		clk.Add(time.Minute)
		if w := get(t, mux, "/s/1"); w.Header().Get("X-Cache") == "HIT" {
			t.Fatal("a local copy was served past the entry's TTL by the app clock")
		}
	})
}

// TestOtherInstanceStopsWithin100ms: instance B holds the entry in its
// local tier; once A's purge returns, B's next read is fresh within 100 ms
// (Redis's invalidation push), measured from the purge's return.
func TestOtherInstanceStopsWithin100ms(t *testing.T) {
	t.Parallel()
	cfg := redistest.Config(t)
	longLease(&cfg)
	rdbB := redistest.Connect(t, cfg)
	a := newCache(t, redistest.Connect(t, cfg), Config{})
	b := newCache(t, rdbB, Config{})
	var v atomic.Int64
	route := Route{Key: Resource("script", "id")}
	muxA := mount(a, "GET /s/{id}", route, versioned(&v))
	muxB := mount(b, "GET /s/{id}", route, versioned(&v))
	var worst time.Duration
	for i := range 20 {
		want := fmt.Sprintf("v=%d", v.Load())
		get(t, muxA, "/s/1")
		eventually(t, "B to hold the entry locally", func() bool {
			before := rdbB.RoundTrips()
			w := get(t, muxB, "/s/1")
			return rdbB.RoundTrips() == before && w.Body.String() == want
		})
		v.Add(1)
		want = fmt.Sprintf("v=%d", v.Load())
		var err error
		if i%2 == 0 {
			err = a.Invalidate(context.Background(), ResourceTag("script", "1"))
		} else {
			err = a.InvalidatePatterns(context.Background(), "script:*")
		}
		if err != nil {
			t.Fatal(err)
		}
		purged := time.Now()
		for {
			started := time.Now()
			if get(t, muxB, "/s/1").Body.String() == want {
				break
			}
			lag := started.Sub(purged)
			worst = max(worst, lag)
			if lag > 100*time.Millisecond {
				t.Fatalf("round %d: B served old data %v after A's purge returned, want within 100ms", i, lag)
			}
		}
	}
	t.Logf("longest B served old data after A's purge returned: %v", worst)
}

// TestWriterNeverServesItsPurgedCopy: the purging instance's own local
// copies go at once, whatever kind of purge, though Redis's invalidation
// reaches it on another connection a moment after the purge returns.
func TestWriterNeverServesItsPurgedCopy(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t, longLease)
	c := newCache(t, rdb, Config{})
	var v atomic.Int64
	// Vary puts a suffix on the key, so it can be purged as a literal key.
	mux := mount(c, "GET /s/{id}", Route{Key: Resource("script", "id"), Vary: []string{"Accept-Language"}}, versioned(&v))
	entry := rdb.Keys().Tagged("script", "1", "v-")
	purges := []struct {
		name string
		run  func() error
	}{
		{"tag", func() error { return c.Invalidate(context.Background(), ResourceTag("script", "1")) }},
		{"resource pattern", func() error { return c.InvalidatePatterns(context.Background(), "script:{1}") }},
		{"literal key", func() error {
			return c.InvalidatePatterns(context.Background(), entry[len(rdb.Keys().Prefix()):])
		}},
		{"glob", func() error { return c.InvalidatePatterns(context.Background(), "script:{1*") }},
	}
	for _, p := range purges {
		t.Run(p.name, func(t *testing.T) {
			for i := range 30 {
				get(t, mux, "/s/1")
				eventually(t, "a local hit", func() bool {
					before := rdb.RoundTrips()
					wantXCache(t, get(t, mux, "/s/1"), "HIT")
					return rdb.RoundTrips() == before
				})
				old := v.Load()
				v.Add(1)
				if err := p.run(); err != nil {
					t.Fatal(err)
				}
				if got := get(t, mux, "/s/1").Body.String(); got == fmt.Sprintf("v=%d", old) {
					t.Fatalf("round %d: the purging instance served its old copy after the purge returned", i)
				}
			}
		})
	}
}

// TestLocalTierDroppedWithConnection: killing Redis drops every local copy
// (rueidis closes the connection's cache) within API.md's 100 ms, and none
// is used again: while Redis is down requests bypass, and once it is back
// the first read goes to Redis, which lost the entry.
func TestLocalTierDroppedWithConnection(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	scfg := srv.Config(t)
	longLease(&scfg)
	rdb := redistest.Connect(t, scfg)
	c := newCache(t, rdb, Config{LookupTimeout: 200 * time.Millisecond})
	var v atomic.Int64
	h := &counting{body: func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "v=%d", v.Load()) }}
	mux := mount(c, "GET /s/{id}", Route{Key: Resource("script", "id")}, h)
	get(t, mux, "/s/1")
	eventually(t, "a local hit", func() bool {
		before := rdb.RoundTrips()
		wantXCache(t, get(t, mux, "/s/1"), "HIT")
		return rdb.RoundTrips() == before
	})
	srv.Kill()
	// The client learns of the closed connection when it reads it: a read
	// in between may still hit. API.md's bound: none begun 100 ms after.
	killed := time.Now()
	redistest.StaleWithin(t, "local copy after Redis was killed", killed, 100*time.Millisecond, func() (bool, string) {
		w := get(t, mux, "/s/1")
		return w.Header().Get("X-Cache") == "HIT", "X-Cache " + w.Header().Get("X-Cache")
	})
	for range 3 {
		wantXCache(t, get(t, mux, "/s/1"), "BYPASS")
	}
	srv.Start(t) // empty: no persistence
	eventually(t, "Redis to answer again", func() bool { return rdb.Ping(context.Background()) == nil })
	before := rdb.RoundTrips()
	w := get(t, mux, "/s/1")
	if w.Header().Get("X-Cache") == "HIT" || rdb.RoundTrips() == before {
		t.Fatalf("after reconnecting: X-Cache %q with %d round trips; want a read from Redis (a MISS: the restart lost the entry)",
			w.Header().Get("X-Cache"), rdb.RoundTrips()-before)
	}
}

// longLease gives a client a LocalLease longer than any test, so no
// background lease renewal shows among the commands a test counts (the
// lease itself is redisx's, tested there).
func longLease(cfg *redisx.Config) { cfg.LocalLease = time.Hour }

// TestNoJoinAcrossAPurge: a request that begins after this instance's
// purge returned never gets the response of a handler run begun before
// the purge (coalescing), with a slow handler (300 ms) and Redis up or
// down: it runs the handler itself.
func TestNoJoinAcrossAPurge(t *testing.T) {
	t.Parallel()
	for _, down := range []bool{false, true} {
		name := "Redis up"
		if down {
			name = "Redis down"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.StartServer(t)
			rdb := redistest.Connect(t, srv.Config(t))
			c := newCache(t, rdb, Config{LookupTimeout: 100 * time.Millisecond, StoreTimeout: 100 * time.Millisecond})
			var db atomic.Int64 // the database: its current version
			db.Store(1)
			slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				v := db.Load() // read first, as a query would, then slow
				time.Sleep(300 * time.Millisecond)
				fmt.Fprintf(w, "v=%d", v)
			})
			mux := mount(c, "GET /api/licenses", Route{Key: List("licenses:user", "page"), Public: true}, slow)
			if down {
				srv.Kill()
			}
			first := make(chan string, 1)
			go func() { first <- get(t, mux, "/api/licenses").Body.String() }()
			time.Sleep(100 * time.Millisecond) // the first run has read version 1
			db.Store(2)
			_ = c.Invalidate(context.Background(), NamespaceTag("licenses:user:list")) // fails with Redis down; the write happened
			w := get(t, mux, "/api/licenses")
			if got := w.Body.String(); got != "v=2" {
				t.Fatalf("request begun after the purge returned got %q (X-Cache %q); want v=2 (it joined a run begun before the purge)", got, w.Header().Get("X-Cache"))
			}
			t.Logf("the request begun before the purge got %q", <-first)
		})
	}
}

// TestHungInstanceStopsServingPurgedWithin100ms: instance A holds an entry
// in its local tier when its connection to Redis is black-holed; instance
// B purges it on a healthy connection. No request on A that begins more
// than API.md's 100 ms (redisx's LocalLease) after the purge returned gets
// the purged body; the figure is printed.
func TestHungInstanceStopsServingPurgedWithin100ms(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	px := faultproxy.Start(t, srv.Addr)
	acfg := redistest.At(redistest.Config(t), px.Addr())
	acfg.CommandTimeout = 200 * time.Millisecond
	rdbA := redistest.Connect(t, acfg)
	a := newCache(t, rdbA, Config{LookupTimeout: 100 * time.Millisecond, StoreTimeout: 100 * time.Millisecond})
	b := newCache(t, redistest.Connect(t, redistest.At(acfg, srv.Addr)), Config{})
	var v atomic.Int64
	v.Store(1)
	route := Route{Key: Resource("script", "id")}
	muxA := mount(a, "GET /s/{id}", route, versioned(&v))
	get(t, muxA, "/s/1")
	eventually(t, "A to hold the entry locally", func() bool {
		before := rdbA.RoundTrips()
		w := get(t, muxA, "/s/1")
		return w.Header().Get("X-Cache") == "HIT" && rdbA.RoundTrips() == before
	})
	px.Hang()
	t.Cleanup(px.Reset)
	v.Store(2)
	if err := b.Invalidate(context.Background(), ResourceTag("script", "1")); err != nil {
		t.Fatal(err)
	}
	redistest.StaleWithin(t, "a purged response on a hung instance", time.Now(), 100*time.Millisecond, func() (bool, string) {
		w := get(t, muxA, "/s/1")
		return w.Body.String() == "v=1", fmt.Sprintf("%q (X-Cache %q)", w.Body, w.Header().Get("X-Cache"))
	})
}

// TestMissTakesOverAStuckLease: another instance holds a missed key's
// lease and never stores (its handler hangs; after a failover the lease
// may outlive a dead holder). A miss here waits MaxLeaseWait, runs the
// handler, takes the lease over and stores, so the next request is a HIT
// instead of another wait.
func TestMissTakesOverAStuckLease(t *testing.T) {
	t.Parallel()
	cfg := redistest.Config(t)
	ccfg := Config{MaxLeaseWait: 200 * time.Millisecond, LeaseTTL: 10 * time.Second}
	a := newCache(t, redistest.Connect(t, cfg), ccfg)
	b := newCache(t, redistest.Connect(t, cfg), ccfg)
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	holding := make(chan struct{})
	var once sync.Once
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(holding) })
		<-stuck
		fmt.Fprint(w, "from b")
	})
	route := Route{Key: Resource("script", "id")}
	muxB := mount(b, "GET /s/{id}", route, hang)
	go get(t, muxB, "/s/1")
	<-holding // b holds the lease and will not store
	muxA := mount(a, "GET /s/{id}", route, okHandler("from a"))
	start := time.Now()
	if w := get(t, muxA, "/s/1"); w.Body.String() != "from a" {
		t.Fatalf("first request on a: %q", w.Body)
	}
	t.Logf("the first miss waited %v for the stuck lease (MaxLeaseWait %v)", time.Since(start).Round(time.Millisecond), ccfg.MaxLeaseWait)
	// b's lease was taken over, and released by a's store: the next miss
	// of the key (after a purge, say) does not wait behind it again.
	rdbA := a.rdb
	for _, k := range redistest.Keys(t, rdbA) {
		if strings.HasSuffix(k, "lease") {
			t.Fatalf("lease %s still held after the miss that waited it out; every later miss would wait MaxLeaseWait again", k)
		}
	}
	wantXCache(t, get(t, muxA, "/s/1"), "HIT")
}
