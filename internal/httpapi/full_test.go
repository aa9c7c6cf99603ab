package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/theater"
)

// TestFullRedis is "Hostile load and Redis trouble": with Redis at
// maxmemory under noeviction, /readyz says "redis":"full" with 503 (a PING
// would still answer), what can be read is still served (a cached script,
// a script from the database, the signed-in user), a sign-in is 503, and
// the request's log line names the cause, "redis out of memory", while the
// client's problem stays generic.
func TestFullRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--maxmemory-policy", "noeviction")
	in := newInstance(t, options{redis: redistest.At(redistest.Config(t), srv.Addr)})
	author := signUp(t, in, theater.RolePlaywright)
	later := signUp(t, in, theater.RoleProducer)
	ids := make([]string, 2)
	for i := range ids {
		r := author.c.do("POST", "/api/scripts", scriptBody("Full "+string(rune('A'+i))))
		want(t, r, http.StatusCreated, "create a script")
		var sc theater.Script
		r.json(t, &sc)
		ids[i] = sc.ID
	}
	anon := in.client(t)
	want(t, anon.do("GET", "/api/scripts/"+ids[0], nil), http.StatusOK, "read the first script (cached)")
	want(t, anon.do("GET", "/readyz", nil), http.StatusOK, "/readyz before the fill")

	redistest.FillUp(t, in.rdb)

	r := anon.do("GET", "/readyz", nil)
	want(t, r, http.StatusServiceUnavailable, "/readyz on a full Redis")
	var ready struct{ Redis, Database string }
	r.json(t, &ready)
	if ready.Redis != "full" || ready.Database != "ok" {
		t.Errorf("/readyz body %s; want redis full, database ok", r.body)
	}

	r = anon.do("GET", "/api/scripts/"+ids[0], nil)
	want(t, r, http.StatusOK, "a cached script on a full Redis")
	if x := r.header.Get("X-Cache"); x != "HIT" {
		t.Errorf("cached script on a full Redis: X-Cache %q; want HIT", x)
	}
	r = anon.do("GET", "/api/scripts/"+ids[1], nil)
	want(t, r, http.StatusOK, "an uncached script on a full Redis (from the database)")
	if x := r.header.Get("X-Cache"); x != "BYPASS" {
		t.Errorf("uncached script on a full Redis: X-Cache %q; want BYPASS (Redis would refuse the store)", x)
	}
	want(t, author.c.do("GET", "/api/me", nil), http.StatusOK, "/api/me on a full Redis")

	r = anon.do("POST", "/api/auth/login", map[string]any{"email": later.email, "password": later.pass})
	want(t, r, http.StatusServiceUnavailable, "sign-in on a full Redis")
	if strings.Contains(string(r.body), "memory") {
		t.Errorf("the client's problem names Redis's state: %s", r.body)
	}

	logged := false
	for _, line := range strings.Split(in.logs.String(), "\n") {
		if strings.Contains(line, `"route":"/api/auth/login"`) && strings.Contains(line, `"status":503`) {
			logged = true
			if !strings.Contains(line, "redis out of memory") {
				t.Errorf("the sign-in's log line does not name the cause: %s", line)
			}
		}
		if strings.Contains(line, "could not reach redis") {
			t.Errorf("a log line says Redis could not be reached; it answered, full: %s", line)
		}
	}
	if !logged {
		t.Errorf("no log line for the refused sign-in:\n%s", in.logs.String())
	}

	m := anon.do("GET", "/metrics", nil)
	want(t, m, http.StatusOK, "/metrics")
	for _, series := range []string{
		"tsp_redisx_oom_replies_total ",
		`tsp_httpcache_errors_total{op="store_out_of_memory"} `,
	} {
		i := strings.Index(string(m.body), series)
		if i < 0 || strings.HasPrefix(string(m.body[i+len(series):]), "0\n") {
			t.Errorf("/metrics: %s missing or 0", series)
		}
	}
}
