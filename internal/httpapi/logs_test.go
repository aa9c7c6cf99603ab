package httpapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/ratelimit"
)

// TestAccessLog checks one JSON line per request with the fields the issue
// names, and that no token or password ever reaches the log.
func TestAccessLog(t *testing.T) {
	in := newInstance(t, options{})
	a := signUp(t, in, theater.RolePlaywright)
	r := a.c.do("POST", "/api/scripts", scriptBody("Logged"))
	want(t, r, 201, "create")
	var sc theater.Script
	r.json(t, &sc)
	anon := in.client(t)
	anon.do("GET", "/api/scripts/"+sc.ID, nil, "X-Request-ID", "trace-me-1")
	anon.do("GET", "/api/scripts/"+sc.ID, nil)
	anon.do("POST", "/api/auth/login", map[string]any{"email": a.email, "password": "wrong password here"})
	a.c.do("GET", "/api/me", nil)

	logs := in.logs.String()
	for _, secret := range []string{a.pass, a.c.token, "wrong password here"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the log holds a secret %q", secret)
		}
	}
	var lines []map[string]any
	sc2 := bufio.NewScanner(strings.NewReader(logs))
	for sc2.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc2.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc2.Text(), err)
		}
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	// register, login, create, 2 reads, failed login, me
	if len(lines) != 7 {
		t.Fatalf("%d request lines, want 7:\n%s", len(lines), logs)
	}
	var traced map[string]any
	for _, l := range lines {
		for _, f := range []string{"method", "route", "status", "duration_ms", "request_id"} {
			if _, ok := l[f]; !ok {
				t.Errorf("line %v lacks %s", l, f)
			}
		}
		if l["request_id"] == "trace-me-1" {
			traced = l
		}
	}
	// The route is the path pattern alone; the method is its own field.
	if traced == nil || traced["method"] != "GET" || traced["route"] != "/api/scripts/{id}" || traced["status"] != float64(200) || traced["cache"] != "MISS" {
		t.Fatalf("the traced read logged %v, want method GET, route /api/scripts/{id}, status 200, cache MISS", traced)
	}
}

// TestLoginLimiter: failed sign-ins per IP + email are limited, with the
// contract's headers; a good password does not count.
func TestLoginLimiter(t *testing.T) {
	in := newInstance(t, options{edit: func(d *Deps) {
		d.LoginRate = ratelimit.Rate{Limit: 3, Window: time.Minute}
	}})
	a := signUp(t, in, theater.RoleProducer)
	c := in.client(t)
	// Successful sign-ins are refunded: many of them pass.
	for i := 0; i < 4; i++ {
		want(t, c.do("POST", "/api/auth/login", map[string]any{"email": a.email, "password": a.pass}), 200, "good sign-in")
	}
	for i := 0; i < 3; i++ {
		r := c.do("POST", "/api/auth/login", map[string]any{"email": a.email, "password": "wrong password"})
		want(t, r, 401, "wrong password")
		for _, h := range []string{"RateLimit", "RateLimit-Policy", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
			if r.header.Get(h) == "" {
				t.Errorf("login answer lacks %s", h)
			}
		}
	}
	r := c.do("POST", "/api/auth/login", map[string]any{"email": a.email, "password": a.pass})
	want(t, r, http.StatusTooManyRequests, "fourth attempt, even with the right password")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// Another email from the same IP is limited separately.
	b := signUp(t, in, theater.RoleProducer)
	want(t, c.do("POST", "/api/auth/login", map[string]any{"email": b.email, "password": b.pass}), 200, "other email")
	// The email is compared case-insensitively: no bypass by capitals.
	want(t, c.do("POST", "/api/auth/login", map[string]any{"email": strings.ToUpper(a.email), "password": a.pass}), 429, "capitals")
}

// TestAPILimiter: the API-wide limit keys on the user when signed in.
func TestAPILimiter(t *testing.T) {
	in := newInstance(t, options{edit: func(d *Deps) {
		d.APIRate = ratelimit.Rate{Limit: 8, Window: time.Minute}
		d.LoginRate = ratelimit.Rate{}
	}})
	a := signUp(t, in, theater.RoleProducer) // 2 requests from this IP
	anon := in.client(t)
	for i := 0; i < 6; i++ {
		want(t, anon.do("GET", "/api/scripts", nil), 200, "anonymous under the limit")
	}
	r := anon.do("GET", "/api/scripts", nil)
	want(t, r, 429, "anonymous over the limit")
	// The signed-in user has a budget of their own.
	for i := 0; i < 8; i++ {
		want(t, a.c.do("GET", "/api/me", nil), 200, "signed in under the limit")
	}
	want(t, a.c.do("GET", "/api/me", nil), 429, "signed in over the limit")
	// Health, readiness and metrics are not /api and never limited.
	want(t, anon.do("GET", "/healthz", nil), 200, "healthz")
}

// TestNoEmailInKeys: the login limiter's keys hold a hash, not the address.
func TestNoEmailInKeys(t *testing.T) {
	in := newInstance(t, options{})
	a := signUp(t, in, theater.RoleProducer)
	in.client(t).do("POST", "/api/auth/login", map[string]any{"email": a.email, "password": "wrong password"})
	local, _, _ := strings.Cut(a.email, "@")
	keys := redistestKeys(t, in)
	if len(keys) == 0 {
		t.Fatal("no keys written: the test proves nothing")
	}
	for _, k := range keys {
		if strings.Contains(strings.ToLower(k), strings.ToLower(local)) {
			t.Fatalf("key %q holds the email", k)
		}
	}
}
