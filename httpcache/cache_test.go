package httpcache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// Each safe-default rule: the first request stores nothing, so the second
// runs the handler again. The control row shows the same setup caches once
// the rule does not apply, so each row fails if its rule is removed.
func TestSafeDefaults(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	c := newCache(t, rdb, Config{CredentialCookies: []string{"tsp_session"}})
	cases := []struct {
		name    string
		route   Route
		handler func(w http.ResponseWriter, r *http.Request)
		hdr     []string
		cached  bool
	}{
		{"control: plain 200 is stored", Route{}, plain, nil, true},
		{"Set-Cookie", Route{}, func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "tsp_session", Value: "secret"})
			plain(w, r)
		}, nil, false},
		{"Cache-Control private", Route{}, withCC("private, max-age=60"), nil, false},
		{"Cache-Control no-store", Route{}, withCC("no-store"), nil, false},
		{"Cache-Control no-cache", Route{}, withCC("no-cache"), nil, false},
		{"request with Authorization", Route{}, plain, []string{"Authorization", "Bearer t"}, false},
		{"request with session cookie", Route{}, plain, []string{"Cookie", "tsp_session=abc"}, false},
		{"control: other cookie is not a credential", Route{}, plain, []string{"Cookie", "theme=dark"}, true},
		{"control: Public route with Authorization", Route{Public: true}, plain, []string{"Authorization", "Bearer t"}, true},
		{"404", Route{}, status(404), nil, false},
		{"control: 404 opted in", Route{Statuses: []int{404}}, status(404), nil, true},
		{"500", Route{}, status(500), nil, false},
		{"Vary on an unkeyed header", Route{}, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "Accept-Encoding")
			plain(w, r)
		}, nil, false},
		{"control: Vary on a keyed header", Route{Vary: []string{"Accept-Encoding"}}, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "Accept-Encoding")
			plain(w, r)
		}, nil, true},
		{"Vary *", Route{}, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "*")
			plain(w, r)
		}, nil, false},
		{"body over MaxBodyBytes", Route{MaxBodyBytes: 4}, plain, nil, false},
		{"Condition false", Route{Condition: func(*http.Request) bool { return false }}, plain, nil, false},
		{"handler flushes", Route{}, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "part")
			http.NewResponseController(w).Flush()
		}, nil, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &counting{body: tc.handler}
			path := fmt.Sprintf("/safe/%d", i)
			mux := mount(c, "GET "+path, tc.route, h)
			first := get(t, mux, path, tc.hdr...)
			second := get(t, mux, path, tc.hdr...)
			if tc.cached {
				wantXCache(t, second, "HIT")
				if got := h.n.Load(); got != 1 {
					t.Fatalf("handler ran %d times, want 1", got)
				}
				return
			}
			if got := h.n.Load(); got != 2 {
				t.Fatalf("handler ran %d times, want 2: the response was stored (X-Cache %q then %q)", got, first.Header().Get("X-Cache"), second.Header().Get("X-Cache"))
			}
			if second.Header().Get("X-Cache") == "HIT" {
				t.Fatal("second response is a HIT")
			}
			if first.Body.String() != second.Body.String() {
				t.Fatalf("bodies differ: %q vs %q", first.Body, second.Body)
			}
		})
	}
}

func plain(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "hello world")
}

func withCC(cc string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", cc)
		plain(w, r)
	}
}

func status(code int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
		io.WriteString(w, http.StatusText(code))
	}
}

// An attacker's unkeyed headers and query parameters never reach what is
// stored for everybody.
func TestUnkeyedInputCannotPoison(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	c := newCache(t, rdb, Config{})
	echo := &counting{body: func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s fwd=%s orig=%s limit=%s method=%s",
			r.Host, r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Original-URL"),
			r.URL.Query().Get("limit"), r.Header.Get("X-HTTP-Method-Override"))
	}}
	mux := mount(c, "GET /api/scripts", Route{Key: List("scripts", "page"), Public: true}, echo)
	attack := get(t, mux, "/api/scripts?page=1&limit=100000",
		"X-Forwarded-Host", "evil.example", "X-Original-URL", "/admin", "X-HTTP-Method-Override", "DELETE")
	victim := get(t, mux, "/api/scripts?page=1")
	wantXCache(t, victim, "HIT")
	for _, bad := range []string{"evil", "/admin", "100000", "DELETE"} {
		if strings.Contains(attack.Body.String(), bad) || strings.Contains(victim.Body.String(), bad) {
			t.Fatalf("unkeyed input %q reached the stored response: %q", bad, victim.Body)
		}
	}
}

func TestHitReplaysByteForByte(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	c := newCache(t, rdb, Config{})
	body := make([]byte, 70_000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	h := &counting{body: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Add("X-Multi", "one")
		w.Header().Add("X-Multi", "two")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "secret")
		w.Header().Set("X-Request-Id", "req-1")
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Write(body)
	}}
	mux := http.NewServeMux()
	mux.Handle("GET /bin", c.Middleware(Route{})(h))
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", r.Header.Get("X-Test-Id")) // set outside the cache
		mux.ServeHTTP(w, r)
	})
	miss := get(t, outer, "/bin", "X-Test-Id", "a")
	hit := get(t, outer, "/bin", "X-Test-Id", "b")
	wantXCache(t, miss, "MISS")
	wantXCache(t, hit, "HIT")
	if !bytes.Equal(hit.Body.Bytes(), body) || !bytes.Equal(miss.Body.Bytes(), body) {
		t.Fatal("the body changed on the way through the cache")
	}
	for _, name := range []string{"Content-Type", "Content-Length", "Cache-Control", "Etag"} {
		if got, want := hit.Header().Values(name), miss.Header().Values(name); strings.Join(got, "|") != strings.Join(want, "|") || len(got) == 0 {
			t.Errorf("%s: hit %q, miss %q", name, got, want)
		}
	}
	if got := hit.Header().Values("X-Multi"); strings.Join(got, ",") != "one,two" {
		t.Errorf("X-Multi = %q, want one, two in order", got)
	}
	if hit.Header().Get("X-Hop") != "" {
		t.Error("a header named in Connection was stored")
	}
	if got := hit.Header().Get("X-Request-Id"); got != "b" {
		t.Errorf("X-Request-Id = %q, want the hit's own (b)", got)
	}
	if hit.Header().Get("Age") == "" || !strings.HasPrefix(hit.Header().Get("Cache-Status"), "tsp; hit; ttl=") {
		t.Errorf("hit headers: Age %q, Cache-Status %q", hit.Header().Get("Age"), hit.Header().Get("Cache-Status"))
	}
	if h.n.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", h.n.Load())
	}
}

func TestETagAndNotModified(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	c := newCache(t, rdb, Config{})
	h := &counting{body: func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") != "" {
			t.Error("the handler saw If-None-Match")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=0")
		w.Header().Set("Vary", "Accept-Language")
		io.WriteString(w, `{"id":"1"}`)
	}}
	mux := mount(c, "GET /e", Route{Vary: []string{"Accept-Language"}}, h)
	// The first request carries If-None-Match too: the miss answers it.
	first := get(t, mux, "/e", "If-None-Match", `"nope"`)
	wantXCache(t, first, "MISS")
	etag := first.Header().Get("Etag")
	if !validETag(etag) || strings.HasPrefix(etag, "W/") {
		t.Fatalf("ETag = %q, want a strong entity-tag", etag)
	}
	cases := []struct {
		name, method, inm string
		want              int
	}{
		{"match", "GET", etag, 304},
		{"weak form matches", "GET", "W/" + etag, 304},
		{"in a list", "GET", `"a", ` + etag + `, "b"`, 304},
		{"star", "GET", "*", 304},
		{"HEAD match", "HEAD", etag, 304},
		{"no match", "GET", `"other"`, 200},
		{"malformed", "GET", `W/x`, 200},
		{"absent", "GET", "", 200},
		{"HEAD no match", "HEAD", `"other"`, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.inm != "" {
				hdr = []string{"If-None-Match", tc.inm}
			}
			w := do(t, mux, tc.method, "/e", hdr...)
			if w.Code != tc.want {
				t.Fatalf("status = %d, want %d", w.Code, tc.want)
			}
			if w.Header().Get("Etag") != etag {
				t.Errorf("ETag = %q, want %q", w.Header().Get("Etag"), etag)
			}
			switch {
			case tc.want == 304:
				if w.Body.Len() != 0 {
					t.Errorf("304 with a body: %q", w.Body)
				}
				for _, name := range []string{"Cache-Control", "Vary", "X-Cache", "Age"} {
					if w.Header().Get(name) == "" {
						t.Errorf("304 lacks %s", name)
					}
				}
				if w.Header().Get("Content-Type") != "" || w.Header().Get("Content-Length") != "" {
					t.Errorf("304 carries representation metadata: %v", w.Header())
				}
			case tc.method == "HEAD":
				if w.Body.Len() != 0 || w.Header().Get("Content-Length") != "10" {
					t.Errorf("HEAD: body %q, Content-Length %q", w.Body, w.Header().Get("Content-Length"))
				}
			default:
				if w.Body.String() != `{"id":"1"}` {
					t.Errorf("body = %q", w.Body)
				}
			}
		})
	}
	// The miss path answers a matching If-None-Match with 304 as well.
	miss := get(t, mount(c, "GET /e2", Route{}, okHandler("x")), "/e2", "If-None-Match", `*`)
	if miss.Code != 304 || miss.Header().Get("X-Cache") != "MISS" {
		t.Fatalf("miss with If-None-Match: *: status %d, X-Cache %q; want 304 MISS", miss.Code, miss.Header().Get("X-Cache"))
	}
	if h.n.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", h.n.Load())
	}
}

func TestVaryAndPerUserKeys(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	c := newCache(t, rdb, Config{})
	lang := &counting{body: func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "lang="+r.Header.Get("Accept-Language"))
	}}
	mux := mount(c, "GET /v", Route{Vary: []string{"Accept-Language"}}, lang)
	en := get(t, mux, "/v", "Accept-Language", "en")
	fr := get(t, mux, "/v", "Accept-Language", "fr")
	en2 := get(t, mux, "/v", "Accept-Language", "en")
	if en.Body.String() != "lang=en" || fr.Body.String() != "lang=fr" || en2.Body.String() != "lang=en" {
		t.Fatalf("bodies: %q %q %q", en.Body, fr.Body, en2.Body)
	}
	wantXCache(t, en2, "HIT")
	if got := en2.Header().Get("Vary"); got != "Accept-Language" {
		t.Errorf("Vary = %q, want the keyed header", got)
	}

	me := &counting{body: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private")
		io.WriteString(w, "me="+r.Header.Get("X-User"))
	}}
	perUser := func(r *http.Request) (string, bool) { u := r.Header.Get("X-User"); return u, u != "" }
	umux := mount(c, "GET /me", Route{PerUser: perUser}, me)
	a := get(t, umux, "/me", "X-User", "alice", "Authorization", "Bearer a")
	b := get(t, umux, "/me", "X-User", "bob", "Authorization", "Bearer b")
	a2 := get(t, umux, "/me", "X-User", "alice", "Authorization", "Bearer a")
	if a.Body.String() != "me=alice" || b.Body.String() != "me=bob" || a2.Body.String() != "me=alice" {
		t.Fatalf("per-user bodies: %q %q %q", a.Body, b.Body, a2.Body)
	}
	wantXCache(t, a2, "HIT")
	anon := get(t, umux, "/me")
	wantXCache(t, anon, "BYPASS")
}

func TestClientNoCacheIgnoredUnlessAllowed(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	c := newCache(t, rdb, Config{})
	h := okHandler("x")
	mux := mount(c, "GET /n", Route{}, h)
	get(t, mux, "/n")
	w := get(t, mux, "/n", "Cache-Control", "no-cache")
	wantXCache(t, w, "HIT")
	w = get(t, mux, "/n", "Pragma", "no-cache")
	wantXCache(t, w, "HIT")

	h2 := okHandler("y")
	mux2 := mount(c, "GET /n2", Route{AllowClientNoCache: true}, h2)
	get(t, mux2, "/n2")
	w = get(t, mux2, "/n2", "Cache-Control", "max-age=0")
	wantXCache(t, w, "MISS")
	if !strings.Contains(w.Header().Get("Cache-Status"), "fwd=request") {
		t.Errorf("Cache-Status = %q, want fwd=request", w.Header().Get("Cache-Status"))
	}
	w = get(t, mux2, "/n2", "Cache-Control", "no-store")
	wantXCache(t, w, "BYPASS")
	if got := h2.n.Load(); got != 3 {
		t.Fatalf("handler ran %d times, want 3", got)
	}
}

func TestCorruptEntryIsAMiss(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	c := newCache(t, rdb, Config{})
	h := okHandler("fresh")
	mux := mount(c, "GET /c", Route{}, h)
	get(t, mux, "/c")
	rt := routeFor(t, Route{})
	k, _ := rt.keyFor(httptest.NewRequest("GET", "/c", nil))
	key := rdb.Keys().Tagged("http", k.id)
	for _, junk := range []string{"", "garbage", "\x01\x00\x00\xc8truncated", `{"json":"from the old service"}`} {
		if err := rdb.Set(context.Background(), key, []byte(junk), time.Minute); err != nil {
			t.Fatal(err)
		}
		w := get(t, mux, "/c")
		if w.Code != 200 || w.Body.String() != "fresh" {
			t.Fatalf("with %q stored: status %d body %q", junk, w.Code, w.Body)
		}
		wantXCache(t, w, "MISS")
	}
}

// 500 concurrent requests for one cold key run the handler once; waiters
// get the stored response.
func TestStampedeRunsHandlerOnce(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	c := newCache(t, rdb, Config{})
	release := make(chan struct{})
	h := &counting{body: func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "once")
	}}
	mux := mount(c, "GET /hot", Route{}, h)
	const n = 500
	var wg sync.WaitGroup
	results := make([]*httptest.ResponseRecorder, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = get(t, mux, "/hot")
		}()
	}
	// Let the requests pile up behind the leader, then let it answer.
	eventually(t, "the leader to start", func() bool { return h.n.Load() >= 1 })
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	if got := h.n.Load(); got != 1 {
		t.Fatalf("handler ran %d times for %d concurrent requests, want 1", got, n)
	}
	for i, w := range results {
		if x := w.Header().Get("X-Cache"); x != "HIT" && x != "MISS" {
			t.Fatalf("request %d: X-Cache %q", i, x)
		}
		if w.Code != 200 || w.Body.String() != "once" {
			t.Fatalf("request %d: status %d body %q", i, w.Code, w.Body)
		}
	}
}

// Across instances the lease makes one instance run the handler while the
// other waits for its entry.
func TestStampedeAcrossInstances(t *testing.T) {
	t.Parallel()
	cfg := redistest.Config(t)
	c1 := newCache(t, redistest.Connect(t, cfg), Config{})
	c2 := newCache(t, redistest.Connect(t, cfg), Config{})
	h := &counting{body: func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		io.WriteString(w, "shared")
	}}
	muxes := []http.Handler{mount(c1, "GET /x", Route{}, h), mount(c2, "GET /x", Route{}, h)}
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w := get(t, muxes[i%2], "/x"); w.Body.String() != "shared" {
				t.Errorf("body %q", w.Body)
			}
		}()
	}
	wg.Wait()
	if got := h.n.Load(); got != 1 {
		t.Fatalf("handler ran %d times across two instances, want 1", got)
	}
}

// A response that may not be stored is never handed to waiting requests.
func TestUnstorableResponseNotSharedWithWaiters(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	c := newCache(t, rdb, Config{})
	var seq sync.Mutex
	n := 0
	h := &counting{body: func(w http.ResponseWriter, r *http.Request) {
		seq.Lock()
		n++
		mine := n
		seq.Unlock()
		time.Sleep(50 * time.Millisecond)
		http.SetCookie(w, &http.Cookie{Name: "s", Value: fmt.Sprint(mine)})
		fmt.Fprint(w, mine)
	}}
	mux := mount(c, "GET /p", Route{}, h)
	const reqs = 20
	var wg sync.WaitGroup
	bodies := make(chan string, reqs)
	for range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := get(t, mux, "/p")
			if w.Header().Get("Set-Cookie") != "s="+w.Body.String() {
				t.Errorf("cookie %q does not belong to body %q", w.Header().Get("Set-Cookie"), w.Body)
			}
			bodies <- w.Body.String()
		}()
	}
	wg.Wait()
	close(bodies)
	seen := map[string]bool{}
	for b := range bodies {
		if seen[b] {
			t.Fatalf("two requests got the same private response %q", b)
		}
		seen[b] = true
	}
	if got := h.n.Load(); got != reqs {
		t.Fatalf("handler ran %d times, want %d", got, reqs)
	}
}

func TestEveryKeyHasATTL(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	c := newCache(t, rdb, Config{})
	mux := mount(c, "GET /s/{id}", Route{Key: Resource("script", "id"), Tags: func(*http.Request) []string { return []string{"catalogue"} }}, okHandler("x"))
	get(t, mux, "/s/1")
	get(t, mux, "/s/2")
	if err := c.Invalidate(context.Background(), ResourceTag("script", "1")); err != nil {
		t.Fatal(err)
	}
	get(t, mux, "/s/1")
	keys := redistest.Keys(t, rdb)
	// Two entries and the purged tag's epoch.
	if len(keys) < 3 {
		t.Fatalf("only %d keys: %v", len(keys), keys)
	}
	for _, k := range keys {
		ttl, err := rdb.TTL(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 {
			t.Errorf("key %q has no TTL (%v)", k, ttl)
		}
	}
}

// With Redis down (killed, or paused so calls hang) requests pass through
// to the handler with X-Cache: BYPASS, and caching resumes when it is back.
// A paused Redis keeps its connections open: the local tier serves what it
// holds for at most redisx's LocalLease after Redis last answered, then
// stops.
func TestRedisDownBypasses(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	cfg := redistest.Config(t)
	cfg = redistest.At(cfg, srv.Addr)
	const lease = 200 * time.Millisecond
	cfg.LocalLease = lease
	rdb := redistest.Connect(t, cfg)
	c := newCache(t, rdb, Config{LookupTimeout: 50 * time.Millisecond})
	h := okHandler("ok")
	mux := mount(c, "GET /d", Route{}, h)
	get(t, mux, "/d")
	wantXCache(t, get(t, mux, "/d"), "HIT")

	srv.Pause()
	paused := time.Now()
	for get(t, mux, "/d").Header().Get("X-Cache") == "HIT" {
		// Scheduling on a shared machine is noisy: the bound only has to
		// tell the lease from rueidis's own health check (30s idle + 3s).
		if d := time.Since(paused); d > lease+2*time.Second {
			t.Fatalf("paused Redis: the local tier still serves after %v, want at most the lease (%v)", d, lease)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("paused Redis: local hits stopped after %v (lease %v)", time.Since(paused), lease)
	start := time.Now()
	for range 3 {
		w := get(t, mux, "/d")
		wantXCache(t, w, "BYPASS")
		if w.Code != 200 || w.Body.String() != "ok" {
			t.Fatalf("paused Redis: status %d body %q", w.Code, w.Body)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("three requests with Redis paused took %v: the lookup deadline is not applied", d)
	}
	srv.Resume()
	srv.Kill()
	w := get(t, mux, "/d")
	wantXCache(t, w, "BYPASS")
	if w.Code != 200 {
		t.Fatalf("killed Redis: status %d", w.Code)
	}
	srv.Start(t)
	eventually(t, "caching to resume", func() bool {
		return get(t, mux, "/d").Header().Get("X-Cache") == "HIT"
	})
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	c := newCache(t, rdb, Config{})
	mux := mount(c, "GET /m", Route{Name: "m"}, okHandler("x"))
	get(t, mux, "/m")
	get(t, mux, "/m")
	get(t, mux, "/m", "Authorization", "x")
	got := counters(t, c)
	for name, want := range map[string]float64{
		"httpcache_requests_total,result=hit,route=m":    1,
		"httpcache_requests_total,result=miss,route=m":   1,
		"httpcache_requests_total,result=bypass,route=m": 1,
		"httpcache_stores_total,route=m":                 1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}

// counters gathers c's counters, keyed "name,label=value,..." (labels in
// the registry's order).
func counters(tb testing.TB, c *Cache) map[string]float64 {
	tb.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue()
		}
	}
	return got
}

func TestNewValidates(t *testing.T) {
	rdb := redistest.Client(t)
	for name, cfg := range map[string]Config{
		"negative timeout": {LookupTimeout: -1},
		"bad name":         {Name: "a b"},
		"bad cookie":       {CredentialCookies: []string{"a;b"}},
		"bad namespace":    {Namespaces: []string{"{x}"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(rdb, cfg); err == nil {
				t.Fatal("New accepted an invalid Config")
			}
		})
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Fatal("New accepted a nil client")
	}
	c := newCache(t, rdb, Config{})
	defer func() {
		if recover() == nil {
			t.Fatal("Middleware accepted an invalid Route")
		}
	}()
	c.Middleware(Route{TTL: -time.Second})
}

var _ = redisx.IsNil

// TestOrphanedLeaseWaitIsBounded: a lease whose holder is gone but which
// has not lapsed (say one copied to a replica just before a failover) must
// not hold requests for LeaseTTL: after MaxLeaseWait they run the handler.
func TestOrphanedLeaseWaitIsBounded(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	c := newCache(t, rdb, Config{LeaseTTL: 10 * time.Second, MaxLeaseWait: 300 * time.Millisecond})
	h := okHandler("fresh")
	mux := mount(c, "GET /scripts/{id}", Route{TTL: time.Minute, Public: true, Key: Resource("script", "id")}, h)
	lease := rdb.Keys().Tagged("script", "orphan", "lease")
	ctx := context.Background()
	if err := rdb.Do(ctx, rdb.B().Set().Key(lease).Value("gone-holder").Px(10*time.Second).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	w := get(t, mux, "/scripts/orphan")
	took := time.Since(start)
	if w.Code != http.StatusOK || w.Body.String() != "fresh" || h.n.Load() != 1 {
		t.Fatalf("got %d %q after %d handler runs; want 200 fresh from this instance's handler", w.Code, w.Body.String(), h.n.Load())
	}
	if took < 300*time.Millisecond || took > 3*time.Second {
		t.Fatalf("the request took %v behind an orphaned lease; want about MaxLeaseWait (300ms), far below LeaseTTL (10s)", took)
	}
}
