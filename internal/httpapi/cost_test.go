package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/ratelimit"
)

// The cost of the hot paths, pinned so a change that makes them dearer
// fails here rather than in a load test weeks later: allocations per
// cached hit, and Redis round trips per cache miss. (A hit's round trips,
// zero once the copy is local, are pinned by httpcache's TestHitRoundTrips
// and reported by the benchmarks as roundtrips/op.)

// TestHitAllocations pins the allocations of a cached hit through the
// whole handler, as BenchmarkScriptHit, BenchmarkListHit and BenchmarkMe
// serve them (API limiter on). The figures include the test's own
// request and recorder (about 15 allocations); hitAllocs (race_*_test.go)
// are the counts measured 2026-12-04 plus a margin: a leased limiter's refill
// or a view flush landing in the window adds a fraction of one, and under
// the race detector sync.Pool drops items at random.
func TestHitAllocations(t *testing.T) {
	in, a, sc := benchInstance(t)
	c := in.client(t)
	c.do("GET", "/api/scripts/"+sc.ID, nil)
	c.do("GET", "/api/scripts?page=1&limit=20", nil)
	for _, tc := range []struct {
		name, path, token string
	}{
		{"script", "/api/scripts/" + sc.ID, ""},
		{"list", "/api/scripts?page=1&limit=20", ""},
		{"me", "/api/me", a.c.token},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serve := func() *httptest.ResponseRecorder {
				r := httptest.NewRequest("GET", tc.path, nil)
				if tc.token != "" {
					r.Header.Set("Authorization", "Bearer "+tc.token)
				}
				w := httptest.NewRecorder()
				in.api.ServeHTTP(w, r)
				return w
			}
			// Past the first reads and the lazy starts: the figure is a
			// hit's, as a client that keeps asking sees it.
			for range 200 {
				serve()
			}
			status := 0
			before := in.rdb.RoundTrips()
			const runs = 2000
			got := testing.AllocsPerRun(runs, func() { status = serve().Code })
			trips := float64(in.rdb.RoundTrips()-before) / (runs + 1)
			if status != http.StatusOK {
				t.Fatalf("GET %s: %d", tc.path, status)
			}
			t.Logf("ALLOCS %s hit: %.0f per request (bound %d), %.4f round trips per request", tc.name, got, hitAllocs[tc.name], trips)
			if int(got) > hitAllocs[tc.name] {
				t.Errorf("a cached %s hit makes %.0f allocations, more than the %d pinned: find the new one (go test -bench %s -memprofile)",
					tc.name, got, hitAllocs[tc.name], map[string]string{"script": "ScriptHit", "list": "ListHit", "me": "Me"}[tc.name])
			}
		})
	}
}

// TestMissRoundTrips pins what a cache miss on a list (the bench's
// miss_list: every request a new q) sends to Redis: the lookup (GET; the
// purge epochs are local copies), the fill lease with the epochs it stores
// under (EVALSHA GET GET), the store (EVALSHA), and the check that no
// purge ran meanwhile (GET GET: on Cluster the epochs may live on another
// master than the entry, so the store script cannot read them). The
// session layer sends nothing for an anonymous request. The API limiter is
// off here: a client that hammers it decides from a local lease (ratelimit's
// BenchmarkMiddlewareHotKey/leased pins that at ~0.001 round trips per
// request), and its refills would land at random in this window. A change
// that adds a round trip to every miss — a second lookup, tag upkeep in a
// call of its own — fails here.
func TestMissRoundTrips(t *testing.T) {
	var mu sync.Mutex
	var trips [][]string
	cfg := redistest.Config(t)
	cfg.CommandHook = func(names []string) {
		for _, n := range names {
			if backgroundCommands[n] {
				return
			}
		}
		mu.Lock()
		trips = append(trips, slices.Clone(names))
		mu.Unlock()
	}
	in := newInstance(t, options{redis: cfg, edit: func(d *Deps) {
		d.APIRate = ratelimit.Rate{} // off
	}})
	a := signUp(t, in, theater.RolePlaywright)
	want(t, a.c.do("POST", "/api/scripts", scriptBody("Round trips")), http.StatusCreated, "create a script")
	c := in.client(t)
	// The first misses also load the scripts.
	for i := range 3 {
		want(t, c.do("GET", fmt.Sprintf("/api/scripts?q=warm%d", i), nil), http.StatusOK, "warm-up list")
	}

	const misses = 20
	counts := make([]int, 0, misses)
	var first, last [][]string
	for i := range misses {
		mu.Lock()
		trips = nil
		mu.Unlock()
		r := c.do("GET", fmt.Sprintf("/api/scripts?q=trip%d", i), nil)
		want(t, r, http.StatusOK, "list miss")
		if x := r.header.Get("X-Cache"); x != "MISS" {
			t.Fatalf("q=trip%d: X-Cache %q, want MISS", i, x)
		}
		mu.Lock()
		last = trips
		if i == 0 {
			first = trips
		}
		counts = append(counts, len(trips))
		mu.Unlock()
	}
	t.Logf("ROUNDTRIPS per list miss: %v; the first: %v; the last: %v", counts, first, last)
	worst := slices.Max(counts)
	if worst > missRoundTrips {
		var b strings.Builder
		for _, names := range last {
			fmt.Fprintf(&b, "\n\t%v", names)
		}
		t.Errorf("a list miss made up to %d round trips to Redis, more than the %d pinned; the last miss's:%s",
			worst, missRoundTrips, b.String())
	}
}

// backgroundCommands are what the server's own loops send (the memory
// watcher's INFO, cache warming's SET NX lease and top-views reads): they
// may land while a miss is served, and are not the miss's.
var backgroundCommands = map[string]bool{"INFO": true, "CLUSTER": true, "SET": true, "ZRANGE": true, "ZADD": true, "ZREM": true}

// missRoundTrips is TestMissRoundTrips's bound, measured 2026-12-04.
const missRoundTrips = 4
