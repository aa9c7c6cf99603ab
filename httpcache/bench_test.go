package httpcache

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// benchHit measures the hit path through the middleware with httptest: one
// GET to Redis per request, reported as roundtrips/op.
func benchHit(b *testing.B, body string, parallel bool) {
	rdb := redistest.Client(b, func(cfg *redisx.Config) { cfg.DisableLocalCache = true })
	c := newCache(b, rdb, Config{})
	mux := mount(c, "GET /api/scripts/{id}", Route{Key: Resource("script", "id"), Public: true}, okHandler(body))
	if w := get(b, mux, "/api/scripts/42"); w.Code != 200 {
		b.Fatal(w.Code)
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

func BenchmarkHit(b *testing.B)         { benchHit(b, `{"id":"42","title":"Hamlet"}`, false) }
func BenchmarkHitParallel(b *testing.B) { benchHit(b, `{"id":"42","title":"Hamlet"}`, true) }
func BenchmarkHit64KiB(b *testing.B)    { benchHit(b, strings.Repeat("x", 64<<10), false) }
func BenchmarkRecordDecode(b *testing.B) {
	s := string(sampleRecord())
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := decodeRecord(s); !ok {
			b.Fatal("decode")
		}
	}
}
