package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/theater"
)

// TestRedisDown kills the server's Redis: public reads come from the
// database, registration still works, signed-in routes answer 503, /readyz
// names Redis; when Redis is back everything works again, no restart.
func TestRedisDown(t *testing.T) {
	srv := redistest.StartServer(t)
	cfg := redistest.Config(t)
	cfg = redistest.At(cfg, srv.Addr)
	cfg.CommandTimeout = 200 * time.Millisecond
	in := newInstance(t, options{redis: cfg})
	author := signUp(t, in, theater.RolePlaywright)
	r := author.c.do("POST", "/api/scripts", scriptBody("Outage"))
	want(t, r, 201, "create")
	var sc theater.Script
	r.json(t, &sc)
	anon := in.client(t)
	want(t, anon.do("GET", "/api/scripts/"+sc.ID, nil), 200, "read while up")

	srv.Kill()

	start := time.Now()
	r = anon.do("GET", "/api/scripts/"+sc.ID, nil)
	want(t, r, 200, "read while Redis is down")
	if x := r.header.Get("X-Cache"); x != "BYPASS" {
		t.Errorf("X-Cache = %q while Redis is down, want BYPASS", x)
	}
	want(t, anon.do("GET", "/api/scripts?limit=3", nil), 200, "list while down")
	want(t, anon.do("GET", "/api/users/"+author.user.ID, nil), 200, "profile while down")
	want(t, anon.do("GET", "/api/users/"+author.user.ID+"/scripts", nil), 200, "author's scripts while down")
	want(t, anon.do("POST", "/api/auth/register", map[string]any{"email": uniqueEmail("down"), "password": "registered while down", "name": "D", "role": "producer"}), 201, "register while down")
	for _, rt := range []struct{ method, path string }{{"GET", "/api/me"}, {"GET", "/api/licenses"}, {"PUT", "/api/scripts/" + sc.ID}, {"GET", "/api/sessions"}} {
		r := author.c.do(rt.method, rt.path, scriptBody("Never"))
		want(t, r, http.StatusServiceUnavailable, rt.method+" "+rt.path+" while down")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", rt.method, rt.path)
		}
	}
	r = anon.do("GET", "/readyz", nil)
	want(t, r, 503, "readyz while down")
	var ready struct{ Redis, Database string }
	r.json(t, &ready)
	if ready.Redis != "down" || ready.Database != "ok" {
		t.Fatalf("readyz = %v, want redis down, database ok", ready)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the outage requests took %v: Redis failures are not failing fast", d)
	}

	srv.Start(t)
	deadline := time.Now().Add(10 * time.Second)
	for anon.do("GET", "/readyz", nil).status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("not ready 10s after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The new Redis is empty: sessions are gone, a new sign-in works.
	want(t, author.c.do("GET", "/api/me", nil), 401, "old session on the new Redis")
	again := in.client(t)
	r = again.do("POST", "/api/auth/login", map[string]any{"email": author.email, "password": author.pass})
	want(t, r, 200, "login after recovery")
	var lr loginResponse
	r.json(t, &lr)
	author.c.token = lr.Token
	want(t, author.c.do("PUT", "/api/scripts/"+sc.ID, scriptBody("Recovered")), 200, "update after recovery")
	var got theater.Script
	anon.do("GET", "/api/scripts/"+sc.ID, nil).json(t, &got)
	if got.Title != "Recovered" {
		t.Fatalf("title %q after recovery", got.Title)
	}
	// Views counted during the outage reach Redis once it is back.
	ctx := context.Background()
	deadline = time.Now().Add(5 * time.Second)
	for {
		v, found, err := in.rdb.Get(ctx, domainKeys{in.rdb.Keys()}.ScriptViews(sc.ID))
		if n, _ := strconv.Atoi(string(v)); err == nil && found && n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("views after recovery = %q (found %v, err %v)", v, found, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
