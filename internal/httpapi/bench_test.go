package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/ratelimit"
)

// benchServe runs req through the whole handler (no network) in parallel
// and reports Redis round trips per request.
func benchServe(b *testing.B, in *instance, method, path, token string, wantStatus int) {
	b.Helper()
	req := func() *http.Request {
		r := httptest.NewRequest(method, path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return r
	}
	w := httptest.NewRecorder()
	in.api.ServeHTTP(w, req())
	if w.Code != wantStatus {
		b.Fatalf("%s %s: %d, want %d: %s", method, path, w.Code, wantStatus, w.Body)
	}
	trips := in.rdb.RoundTrips()
	b.ReportAllocs()
	// Many requests in flight, as under wrk -c64: Redis calls of
	// concurrent requests share rueidis's pipeline.
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			in.api.ServeHTTP(w, req())
			if w.Code != wantStatus {
				b.Errorf("status %d", w.Code)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(in.rdb.RoundTrips()-trips)/float64(b.N), "roundtrips/op")
}

// benchInstance has the API limiter on, as in production.
func benchInstance(b testing.TB) (*instance, account, theater.Script) {
	in := newInstance(b, options{edit: func(d *Deps) {
		d.APIRate = ratelimit.Rate{Limit: ratelimit.MaxLimit, Window: time.Minute}
		d.ViewFlushInterval = time.Second
		// The production handler at its default level, into nothing: the
		// tests' log buffer grows without bound, and clearing its pages
		// was 13% of a hit's CPU here, a cost production does not pay.
		d.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}})
	a := signUp(b, in, theater.RolePlaywright)
	r := a.c.do("POST", "/api/scripts", scriptBody("Benchmarked"))
	var sc theater.Script
	r.json(b, &sc)
	return in, a, sc
}

// BenchmarkScriptHit is the bench harness's hit_by_id: a cached script.
func BenchmarkScriptHit(b *testing.B) {
	in, _, sc := benchInstance(b)
	in.client(b).do("GET", "/api/scripts/"+sc.ID, nil)
	benchServe(b, in, "GET", "/api/scripts/"+sc.ID, "", 200)
}

// BenchmarkListHit is hit_list: a cached list page.
func BenchmarkListHit(b *testing.B) {
	in, _, _ := benchInstance(b)
	in.client(b).do("GET", "/api/scripts?page=1&limit=20", nil)
	benchServe(b, in, "GET", "/api/scripts?page=1&limit=20", "", 200)
}

// BenchmarkMe is the me scenario: a session lookup with touch.
func BenchmarkMe(b *testing.B) {
	in, a, _ := benchInstance(b)
	benchServe(b, in, "GET", "/api/me", a.c.token, 200)
}

// BenchmarkMalformedID is the cheapest refusal: no Redis, no store.
func BenchmarkMalformedID(b *testing.B) {
	in, _, _ := benchInstance(b)
	benchServe(b, in, "GET", "/api/scripts/*", "", 404)
}
