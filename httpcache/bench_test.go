package httpcache

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// benchHit measures the hit path through the middleware with httptest,
// reporting Redis round trips per request: none once the entry is held in
// the local tier (a background EXISTS every half redisx LocalLease while hits flow
// is all), one GET per request without it (local false).
func benchHit(b *testing.B, body string, parallel, local bool) {
	rdb := redistest.Client(b, func(cfg *redisx.Config) { cfg.DisableLocalCache = !local })
	// The production lookup deadline (newCache's test default is longer
	// than redisx's CommandTimeout, which would add redisx's own timer).
	c := newCache(b, rdb, Config{LookupTimeout: 100 * time.Millisecond})
	mux := mount(c, "GET /api/scripts/{id}", Route{Key: Resource("script", "id"), Public: true}, okHandler(body))
	if w := get(b, mux, "/api/scripts/42"); w.Code != 200 {
		b.Fatal(w.Code)
	}
	if local {
		eventually(b, "a local hit", func() bool {
			before := rdb.RoundTrips()
			get(b, mux, "/api/scripts/42")
			return rdb.RoundTrips() == before
		})
	}
	if w := get(b, mux, "/api/scripts/42"); w.Header().Get("X-Cache") != "HIT" {
		b.Fatal("not a hit")
	}
	req := httptest.NewRequest(http.MethodGet, "/api/scripts/42", nil)
	b.ReportAllocs()
	start := rdb.RoundTrips()
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w := httptest.NewRecorder()
				mux.ServeHTTP(w, req.WithContext(context.Background()))
			}
		})
	} else {
		for b.Loop() {
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, req)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rdb.RoundTrips()-start)/float64(b.N), "roundtrips/op")
}

const benchBody = `{"id":"42","title":"Hamlet"}`

func BenchmarkHit(b *testing.B)              { benchHit(b, benchBody, false, true) }
func BenchmarkHitParallel(b *testing.B)      { benchHit(b, benchBody, true, true) }
func BenchmarkHit64KiB(b *testing.B)         { benchHit(b, strings.Repeat("x", 64<<10), false, true) }
func BenchmarkHitRedis(b *testing.B)         { benchHit(b, benchBody, false, false) }
func BenchmarkHitRedisParallel(b *testing.B) { benchHit(b, benchBody, true, false) }
func BenchmarkRecordDecode(b *testing.B) {
	s := string(sampleRecord())
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := decodeRecord(s); !ok {
			b.Fatal("decode")
		}
	}
}
