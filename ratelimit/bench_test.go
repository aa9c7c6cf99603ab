package ratelimit_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/ratelimit"
	"github.com/theaterscriptpro/tsp/redisx"
)

// hookClient returns a client whose every round trip is recorded.
func hookClient(tb testing.TB) (*redisx.Client, func() [][]string) {
	tb.Helper()
	var mu sync.Mutex
	var seen [][]string
	rdb := redistest.Client(tb, func(c *redisx.Config) {
		c.CommandHook = func(names []string) {
			mu.Lock()
			seen = append(seen, append([]string(nil), names...))
			mu.Unlock()
		}
	})
	return rdb, func() [][]string {
		mu.Lock()
		defer mu.Unlock()
		out := seen
		seen = nil
		return out
	}
}

// TestRoundTrips pins the cost of a decision: exactly one round trip (one
// EVALSHA) per decision, zero for a key blocked locally and for a cost over
// the limit, one per refund.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			rdb, calls := hookClient(t)
			l := newLimiter(t, rdb, ratelimit.Config{Algorithm: alg, Policies: []ratelimit.Policy{
				{Name: "minute", Rate: ratelimit.Rate{Limit: 3, Window: time.Minute}},
				{Name: "day", Rate: ratelimit.Rate{Limit: 1000, Window: 24 * time.Hour}},
			}})
			// Load the scripts on every node the measured keys live on (a
			// node's first call answers NOSCRIPT once, then EVAL): one
			// decision per key, and one refund, before measuring.
			for i := range 50 {
				allow(t, l, "k"+strconv.Itoa(i), 1)
			}
			if err := l.Refund(context.Background(), allow(t, l, "refund", 1)); err != nil {
				t.Fatal(err)
			}
			calls()
			for i := range 50 {
				allow(t, l, "k"+strconv.Itoa(i), 1)
			}
			got := calls()
			if len(got) != 50 {
				t.Fatalf("50 decisions made %d round trips; want 50", len(got))
			}
			for _, c := range got {
				if len(c) != 1 || c[0] != "EVALSHA" {
					t.Fatalf("a decision sent %v; want one EVALSHA", c)
				}
			}
			for range 4 {
				allow(t, l, "hot", 1)
			}
			calls()
			for range 100 {
				if d := allow(t, l, "hot", 1); d.Allowed || d.Source != ratelimit.SourceBlocked {
					t.Fatalf("hot key: %+v; want blocked locally", d)
				}
			}
			allow(t, l, "k", 4)
			if got := calls(); len(got) != 0 {
				t.Fatalf("blocked key and over-limit cost sent %v; want nothing", got)
			}
			d := allow(t, l, "refund", 1)
			if err := l.Refund(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			if got := calls(); len(got) != 2 || got[0][0] != "EVALSHA" || got[1][0] != "EVALSHA" {
				t.Fatalf("a decision and its refund sent %v; want two EVALSHA round trips", got)
			}
		})
	}
}

// memoryUsage returns MEMORY USAGE of key (all samples).
func memoryUsage(tb testing.TB, rdb *redisx.Client, key string) int64 {
	tb.Helper()
	n, err := rdb.Do(context.Background(), rdb.B().MemoryUsage().Key(key).Samples(0).Build()).AsInt64()
	if err != nil {
		tb.Fatalf("MEMORY USAGE: %v", err)
	}
	return n
}

// keyStates fills one key per algorithm in its typical busy state and
// returns its MEMORY USAGE: a sliding window with every bucket in use, a
// GCRA key, a sliding log of `entries` entries.
func keyStates(tb testing.TB, limit, entries int) map[string]int64 {
	tb.Helper()
	rdb := redistest.Client(tb)
	out := map[string]int64{}
	for _, alg := range algorithms {
		lim, window, step := limit, 100*time.Second, 10*time.Second
		switch alg {
		case ratelimit.SlidingLog:
			lim = entries
		case ratelimit.GCRA:
			// The key lives (real time) only until its TAT: a long window
			// and a still clock keep it alive long enough to measure.
			window, step = ratelimit.MaxWindow, 0
		}
		l := newLimiter(tb, rdb, ratelimit.Config{Name: "mem", Algorithm: alg, BlockedKeys: -1,
			Rate: ratelimit.Rate{Limit: lim, Window: window}})
		clock := newMicroClock(1_700_000_000_000_000)
		ratelimit.SetTestNow(l, clock.now)
		key := "ip:192.0.2.1"
		n := entries
		for i := range n {
			allow(tb, l, key, 1)
			if i%(n/10+1) == 0 {
				clock.add(step) // requests in every bucket
			}
		}
		keys := redistest.Keys(tb, rdb)
		if len(keys) != 1 {
			tb.Fatalf("%v: %d keys", alg, len(keys))
		}
		out[alg.String()] = memoryUsage(tb, rdb, keys[0])
		redistest.DeleteKeys(tb, rdb)
	}
	return out
}

// TestMemoryPerKeyIsConstant: a sliding-window or GCRA key takes the same
// memory whatever the limit; the log grows with its entries, which is why
// it is capped at MaxLogLimit.
func TestMemoryPerKeyIsConstant(t *testing.T) {
	t.Parallel()
	small, large := keyStates(t, 100, 100), keyStates(t, 1_000_000, 100)
	for _, alg := range []string{"sliding-window", "gcra"} {
		if small[alg] != large[alg] || small[alg] > 512 {
			t.Errorf("%s: %d B at limit 100, %d B at limit 1e6; want the same, under 512 B", alg, small[alg], large[alg])
		}
	}
	t.Logf("MEMORY USAGE per key: sliding window (10 buckets) %d B, GCRA %d B, sliding log of 100 entries %d B",
		small["sliding-window"], small["gcra"], small["sliding-log"])
}

// BenchmarkMemoryPerKey reports Redis MEMORY USAGE per key for the README,
// beside the peers' (fixed window 56 B, GCRA 104 B, sorted-set log of 100
// entries 3.6 KB).
func BenchmarkMemoryPerKey(b *testing.B) {
	m := keyStates(b, 600, 100)
	for range b.N {
	}
	b.ReportMetric(float64(m["sliding-window"]), "B/sliding-window-key")
	b.ReportMetric(float64(m["gcra"]), "B/gcra-key")
	b.ReportMetric(float64(m["sliding-log"]), "B/log-key-100-entries")
}

// BenchmarkAllow is one admitted decision: one round trip.
func BenchmarkAllow(b *testing.B) {
	for _, alg := range algorithms {
		b.Run(alg.String(), func(b *testing.B) {
			rdb := redistest.Client(b)
			limit := 1_000_000_000
			if alg == ratelimit.SlidingLog {
				limit = ratelimit.MaxLogLimit
			}
			l := newLimiter(b, rdb, ratelimit.Config{Algorithm: alg, Rate: ratelimit.Rate{Limit: limit, Window: time.Hour}})
			keys := make([]string, 4096)
			for i := range keys {
				keys[i] = "ip:10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
			}
			allow(b, l, keys[0], 1)
			var next atomic.Uint64
			start := rdb.RoundTrips()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					d, err := l.Allow(ctx, keys[next.Add(1)%uint64(len(keys))], 1)
					if err != nil || d.Source != ratelimit.SourceRedis {
						b.Errorf("Allow: %v %v", d.Source, err)
						return
					}
				}
			})
			b.ReportMetric(float64(rdb.RoundTrips()-start)/float64(b.N), "roundtrips/op")
		})
	}
}

// BenchmarkAllowBlocked is a flood from a client already over its limit:
// answered in process.
func BenchmarkAllowBlocked(b *testing.B) {
	rdb := redistest.Client(b)
	l := newLimiter(b, rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 1, Window: time.Hour}})
	allow(b, l, "flood", 1)
	allow(b, l, "flood", 1)
	start := rdb.RoundTrips()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if d, _ := l.Allow(ctx, "flood", 1); d.Allowed {
				b.Error("admitted")
				return
			}
		}
	})
	b.ReportMetric(float64(rdb.RoundTrips()-start)/float64(b.N), "roundtrips/op")
}

// BenchmarkMiddleware is the whole middleware on an admitted request:
// key, decision, headers.
func BenchmarkMiddleware(b *testing.B) {
	rdb := redistest.Client(b)
	l := newLimiter(b, rdb, ratelimit.Config{Name: "api", Rate: ratelimit.Rate{Limit: 1_000_000_000, Window: time.Minute}})
	h := l.Middleware(okHandler(200))
	start := rdb.RoundTrips()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("GET", "/api/scripts", nil)
		r.RemoteAddr = "192.0.2.1:1234"
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Errorf("status %d", w.Code)
				return
			}
		}
	})
	b.ReportMetric(float64(rdb.RoundTrips()-start)/float64(b.N), "roundtrips/op")
}

// BenchmarkAllowHotKey is one client hammering one key (the load
// harness's case), without and with leasing: with it, most decisions are
// spent from a lease in process and round trips/op is the share of
// decisions that reached Redis.
func BenchmarkAllowHotKey(b *testing.B) {
	for _, lease := range []bool{false, true} {
		name := "unleased"
		if lease {
			name = "leased"
		}
		b.Run(name, func(b *testing.B) {
			rdb := redistest.Client(b)
			l := newLimiter(b, rdb, ratelimit.Config{Name: "api", Rate: ratelimit.Rate{Limit: 1_000_000_000, Window: time.Minute},
				Lease: ratelimit.LeaseConfig{Enabled: lease}})
			closeLimiter(b, l)
			allow(b, l, "ip:192.0.2.1", 1)
			start := rdb.RoundTrips()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					d, err := l.Allow(ctx, "ip:192.0.2.1", 1)
					if err != nil || !d.Allowed {
						b.Errorf("Allow: %+v %v", d, err)
						return
					}
				}
			})
			b.ReportMetric(float64(rdb.RoundTrips()-start)/float64(b.N), "roundtrips/op")
		})
	}
}

// BenchmarkMiddlewareHotKey is the whole middleware (key, decision,
// headers) for one client on one key, without and with leasing.
func BenchmarkMiddlewareHotKey(b *testing.B) {
	for _, lease := range []bool{false, true} {
		name := "unleased"
		if lease {
			name = "leased"
		}
		b.Run(name, func(b *testing.B) {
			rdb := redistest.Client(b)
			l := newLimiter(b, rdb, ratelimit.Config{Name: "api", Rate: ratelimit.Rate{Limit: 1_000_000_000, Window: time.Minute},
				Lease: ratelimit.LeaseConfig{Enabled: lease}})
			closeLimiter(b, l)
			h := l.Middleware(okHandler(200))
			start := rdb.RoundTrips()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest("GET", "/api/scripts", nil)
				r.RemoteAddr = "192.0.2.1:1234"
				for pb.Next() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, r)
					if w.Code != 200 {
						b.Errorf("status %d", w.Code)
						return
					}
				}
			})
			b.ReportMetric(float64(rdb.RoundTrips()-start)/float64(b.N), "roundtrips/op")
		})
	}
}
