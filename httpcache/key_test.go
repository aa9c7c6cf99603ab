package httpcache

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/theaterscriptpro/tsp/redisx"
)

// routeFor builds a route on a Cache that never talks to Redis.
func routeFor(tb testing.TB, rt Route) *route {
	tb.Helper()
	keys, _ := redisx.NewKeys("tsp:")
	c := &Cache{keys: keys, m: newMetrics(), namespaces: map[string]bool{}, strip: canonicalSet(UnkeyedHeaders)}
	r, err := c.newRoute(rt)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// keyOf routes target through a mux with pattern, so path values are set.
func keyOf(tb testing.TB, rt *route, pattern, target string, hdr http.Header) (string, bool) {
	tb.Helper()
	var key string
	var ok bool
	mux := http.NewServeMux()
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		var k entryKey
		k, ok = rt.keyFor(r)
		key = k.entry
	})
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header = hdr
	if r.Header == nil {
		r.Header = http.Header{}
	}
	mux.ServeHTTP(httptest.NewRecorder(), r)
	return key, ok
}

func TestKeyGeneratorsMatchTheOriginalConventions(t *testing.T) {
	keys, _ := redisx.NewKeys("tsp:")
	res := routeFor(t, Route{Key: Resource("script", "id")})
	got, ok := keyOf(t, res, "GET /api/scripts/{id}", "/api/scripts/a%20b?utm=x", nil)
	if want := keys.Tagged("script", "a b"); !ok || got != want {
		t.Fatalf("Resource key = %q, %v; want %q (Keys.Tagged(\"script\", id))", got, ok, want)
	}
	list := routeFor(t, Route{Key: List("scripts", "page", "limit", "genre")})
	got, _ = keyOf(t, list, "GET /api/scripts", "/api/scripts?page=2&utm=x&limit=5", nil)
	if want := keys.Tagged("scripts:list", "limit=5&page=2"); got != want {
		t.Fatalf("List key = %q, want %q (Keys.Tagged(\"scripts:list\", params))", got, want)
	}
	byUser := routeFor(t, Route{Key: Resource("scripts:user", "id")})
	got, _ = keyOf(t, byUser, "GET /api/users/{id}/scripts", "/api/users/u1/scripts", nil)
	if want := keys.Tagged("scripts:user", "u1"); got != want {
		t.Fatalf("scripts-by-user key = %q, want %q", got, want)
	}
}

func TestKeyNormalisesQueryOrder(t *testing.T) {
	rt := routeFor(t, Route{})
	a, _ := keyOf(t, rt, "GET /x", "/x?b=2&a=1&a=0", nil)
	b, _ := keyOf(t, rt, "GET /x", "/x?a=1&b=2&a=0", nil)
	c, _ := keyOf(t, rt, "GET /x", "/x?a=0&a=1&b=2", nil)
	if a != b {
		t.Fatalf("reordering names changed the key: %q vs %q", a, b)
	}
	if a == c {
		t.Fatalf("reordering values of one name kept the key (the handler sees a different first value): %q", a)
	}
}

func TestKeyValidation(t *testing.T) {
	for name, rt := range map[string]Route{
		"namespace with brace": {Key: Resource("scr{ipt", "id")},
		"namespace with star":  {Key: Resource("script*", "id")},
		"namespace with =":     {Key: Resource("a=b", "id")},
		"empty namespace":      {Key: Func("", nil)},
		"list without params":  {Key: List("scripts")},
		"negative ttl":         {TTL: -1},
		"vary star":            {Vary: []string{"*"}},
		"bad status":           {Statuses: []int{304}},
		"public and per-user":  {Public: true, PerUser: func(*http.Request) (string, bool) { return "", false }},
	} {
		t.Run(name, func(t *testing.T) {
			if err := rt.Validate(); err == nil {
				t.Fatal("Validate accepted an invalid route")
			}
		})
	}
}

// FuzzKey: the same request always gets the same key, and two requests
// share a key only when everything the handler can see of them that the
// route keys on is equal: method, escaped path, the parsed (allowed) query
// parameters and the Vary headers.
func FuzzKey(f *testing.F) {
	f.Add("/a", "x=1&y=2", "en", "/a", "y=2&x=1", "en", false)
	f.Add("/a%2Fb", "", "", "/a/b", "", "", false)
	f.Add("/a", "x=1;y=2", "", "/a", "x=1", "", true)
	f.Add("/a", "x=%zz&y=1", "", "/a", "y=1", "", true)
	f.Add("/a", "x=1", "en,fr", "/a", "x=1", "en, fr", false)
	f.Fuzz(func(t *testing.T, p1, q1, v1, p2, q2, v2 string, allow bool) {
		rtOpts := Route{Vary: []string{"Accept-Language"}}
		if allow {
			rtOpts.Key = Request("x", "y")
		}
		rt := routeFor(t, rtOpts)
		mk := func(p, q, v string) (*http.Request, bool) {
			u, err := url.Parse("http://h" + "/" + strings.TrimPrefix(p, "/"))
			if err != nil || strings.ContainsAny(p, "?#") {
				return nil, false
			}
			u.RawQuery = q
			r := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}
			if v != "" {
				r.Header["Accept-Language"] = []string{v}
			}
			return r, true
		}
		r1, ok1 := mk(p1, q1, v1)
		r2, ok2 := mk(p2, q2, v2)
		if !ok1 || !ok2 {
			return
		}
		k1, ok := rt.keyFor(r1)
		if !ok {
			return
		}
		again, _ := rt.keyFor(r1)
		if k1.entry != again.entry {
			t.Fatalf("same request, two keys: %q %q", k1.entry, again.entry)
		}
		k2, ok := rt.keyFor(r2)
		if !ok || k1.entry != k2.entry {
			return
		}
		// Same key: what the handler sees of the keyed parts must be equal.
		if r1.URL.EscapedPath() != r2.URL.EscapedPath() {
			t.Fatalf("paths %q and %q share key %q", r1.URL.EscapedPath(), r2.URL.EscapedPath(), k1.entry)
		}
		if a, b := seen(rt, r1), seen(rt, r2); !equalValues(a, b) {
			t.Fatalf("queries %q and %q (handler sees %v vs %v) share key %q", q1, q2, a, b, k1.entry)
		}
		if !slices.Equal(r1.Header["Accept-Language"], r2.Header["Accept-Language"]) {
			t.Fatalf("Vary values %q and %q share key %q", v1, v2, k1.entry)
		}
	})
}

// seen returns the query the handler of a storable request gets.
func seen(rt *route, r *http.Request) url.Values {
	return rt.handlerRequest(r).URL.Query()
}

func equalValues(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestHandlerRequestStripsUnkeyedInput(t *testing.T) {
	rt := routeFor(t, Route{Key: List("scripts", "page"), Vary: []string{"X-Forwarded-Proto"}})
	r := httptest.NewRequest(http.MethodGet, "/api/scripts?page=2&limit=100000", nil)
	r.Header.Set("X-Forwarded-Host", "evil.example")
	r.Header.Set("X-Original-URL", "/admin")
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("If-None-Match", `"x"`)
	r.Header.Set("Range", "bytes=0-1")
	r.Header.Set("Accept", "application/json")
	got := rt.handlerRequest(r)
	for _, h := range []string{"X-Forwarded-Host", "X-Original-Url", "If-None-Match", "Range"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("handler sees %s: %q", h, v)
		}
	}
	if got.Header.Get("X-Forwarded-Proto") != "https" {
		t.Error("a header the route keys on (Vary) was stripped")
	}
	if got.Header.Get("Accept") == "" {
		t.Error("an ordinary header was stripped")
	}
	if q := got.URL.RawQuery; q != "page=2" {
		t.Errorf("handler query = %q, want page=2", q)
	}
	if got.RequestURI != "/api/scripts?page=2" {
		t.Errorf("RequestURI = %q", got.RequestURI)
	}
	if r.Header.Get("X-Forwarded-Host") == "" || r.URL.RawQuery == "page=2" {
		t.Error("the caller's request was modified")
	}
}
