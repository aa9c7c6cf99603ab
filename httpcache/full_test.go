package httpcache

import (
	"strings"
	"testing"

	"github.com/theaterscriptpro/tsp/internal/redistest"
)

// TestFullRedis: with Redis at maxmemory under noeviction, an entry stored
// before is still a HIT, on an instance without a local copy too (the
// tracked read a full Redis refuses is made plainly); a miss runs the
// handler and answers BYPASS with detail=redis-full, since Redis refuses
// its lease and would refuse its store; and the refusal is counted as
// httpcache_errors_total{op="store_out_of_memory"}, not as a store error.
func TestFullRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--maxmemory-policy", "noeviction")
	cfg := redistest.At(redistest.Config(t), srv.Addr)
	stored := newCache(t, redistest.Connect(t, cfg), Config{})
	h := okHandler("ok")
	rt := Route{Name: "d"}
	wantXCache(t, get(t, mount(stored, "GET /d/{x}", rt, h), "/d/1"), "MISS")

	rdb := redistest.Connect(t, cfg)
	c := newCache(t, rdb, Config{})
	mux := mount(c, "GET /d/{x}", rt, h)
	redistest.FillUp(t, rdb)

	w := get(t, mux, "/d/1")
	wantXCache(t, w, "HIT")
	if w.Code != 200 || w.Body.String() != "ok" {
		t.Errorf("hit on a full Redis: %d %q", w.Code, w.Body)
	}
	w = get(t, mux, "/d/2")
	wantXCache(t, w, "BYPASS")
	if w.Code != 200 || w.Body.String() != "ok" || !strings.Contains(w.Header().Get("Cache-Status"), "detail=redis-full") {
		t.Errorf("miss on a full Redis: %d %q, Cache-Status %q; want 200 ok, detail=redis-full", w.Code, w.Body, w.Header().Get("Cache-Status"))
	}

	got := counters(t, c)
	for name, want := range map[string]float64{
		"httpcache_errors_total,op=store_out_of_memory":  1,
		"httpcache_errors_total,op=store":                0,
		"httpcache_errors_total,op=lookup":               0,
		"httpcache_requests_total,result=bypass,route=d": 1,
		"httpcache_requests_total,result=hit,route=d":    1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v; want %v (all: %v)", name, got[name], want, got)
		}
	}
}
