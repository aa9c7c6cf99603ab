package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/theaterscriptpro/tsp/internal/redistest"
)

// aclRule reads the ACL rules of the service's Redis user from
// docs/production.md (the block after "<!-- acl-rules -->"), so the guide
// shows exactly what this test runs under.
func aclRule(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/production.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- acl-rules -->\\s*```[a-z]*\\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("docs/production.md has no ```-block after <!-- acl-rules -->")
	}
	return strings.Join(strings.Fields(string(m[1])), " ")
}

// apiCall is one request of the tour and the status it must get.
type apiCall struct {
	c      *http.Client
	base   string
	tb     testing.TB
	log    fmt.Stringer
	bearer string
}

func (a *apiCall) do(method, path string, body any, want int) map[string]any {
	a.tb.Helper()
	status, b := a.send(method, path, body)
	if status != want {
		a.tb.Fatalf("%s %s = %d, want %d: %s\nlog:\n%s", method, path, status, want, b, a.log.String())
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// status is one request that may get any status (the eviction flood in
// sizing_test.go fails some on purpose).
func (a *apiCall) status(method, path string, body any) int {
	a.tb.Helper()
	status, _ := a.send(method, path, body)
	return status
}

// send makes one request with a JSON body (when not nil) and the bearer
// token (when set) and returns the status and body.
func (a *apiCall) send(method, path string, body any) (int, []byte) {
	a.tb.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+a.bearer)
	}
	res, err := a.c.Do(req)
	if err != nil {
		a.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// tour drives every Redis-side path of the API: register, sign in (and
// fail to, until the login limiter refuses), sessions, scripts cached and
// purged, view counters, licences, sign-out.
func tour(t *testing.T, base string, log fmt.Stringer) {
	anon := &apiCall{c: &http.Client{Timeout: 10 * time.Second}, base: base, tb: t, log: log}
	as := func(token string) *apiCall { a := *anon; a.bearer = token; return &a }
	register := func(email, role string) string {
		anon.do("POST", "/api/auth/register", map[string]any{"email": email, "password": "correct horse battery", "name": "N", "role": role}, 201)
		return anon.do("POST", "/api/auth/login", map[string]any{"email": email, "password": "correct horse battery"}, 200)["token"].(string)
	}
	ann := as(register("ann@example.org", "playwright"))
	bob := as(register("bob@example.org", "producer"))
	second := as(anon.do("POST", "/api/auth/login", map[string]any{"email": "ann@example.org", "password": "correct horse battery"}, 200)["token"].(string))
	ann.do("GET", "/api/me", nil, 200)
	sessions := ann.do("GET", "/api/sessions", nil, 200)
	script := map[string]any{"title": "The Seagull", "genre": "drama", "synopsis": "Four acts.", "castMin": 6, "castMax": 13, "durationMinutes": 150}
	id := ann.do("POST", "/api/scripts", script, 201)["id"].(string)
	anon.do("GET", "/api/scripts/"+id, nil, 200)
	anon.do("GET", "/api/scripts/"+id, nil, 200)
	anon.do("GET", "/api/scripts", nil, 200)
	anon.do("GET", "/api/scripts", nil, 200)
	uid := ann.do("GET", "/api/me", nil, 200)["id"]
	if uid == nil {
		uid = ann.do("GET", "/api/me", nil, 200)["user"].(map[string]any)["id"]
	}
	anon.do("GET", "/api/users/"+uid.(string)+"/scripts", nil, 200)
	script["title"] = "The Seagull (revised)"
	ann.do("PUT", "/api/scripts/"+id, script, 200)
	if got := anon.do("GET", "/api/scripts/"+id, nil, 200)["title"]; got != "The Seagull (revised)" {
		t.Fatalf("after the update: title %v", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for anon.do("GET", "/api/scripts/"+id+"/stats", nil, 200)["views"].(float64) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("views did not reach 3 within 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	bob.do("POST", "/api/scripts/"+id+"/licenses", map[string]any{"type": "perusal"}, 201)
	bob.do("GET", "/api/licenses", nil, 200)
	id2 := ann.do("POST", "/api/scripts", script, 201)["id"].(string)
	ann.do("DELETE", "/api/scripts/"+id2, nil, 204)
	// The login limiter (RATE_LIMIT_LOGIN=3/1m here) refuses the 4th failure.
	for range 3 {
		anon.do("POST", "/api/auth/login", map[string]any{"email": "ann@example.org", "password": "wrong password!"}, 401)
	}
	anon.do("POST", "/api/auth/login", map[string]any{"email": "ann@example.org", "password": "wrong password!"}, 429)
	// Sessions: end the second one by id, then all others, then sign out.
	var otherID string
	for _, it := range sessions["items"].([]any) {
		if s := it.(map[string]any); s["current"] != true {
			otherID, _ = s["id"].(string)
		}
	}
	if otherID != "" {
		ann.do("DELETE", "/api/sessions/"+otherID, nil, 204)
	}
	second.do("GET", "/api/me", nil, 401)
	ann.do("DELETE", "/api/sessions", nil, 204) // every session of ann's, this one too
	ann.do("GET", "/api/me", nil, 401)
	bob.do("POST", "/api/auth/logout", nil, 204)
	bob.do("GET", "/api/me", nil, 401)
	anon.do("GET", "/readyz", nil, 200)
}

// commandStats is INFO commandstats as command → calls.
func commandStats(t *testing.T, c rueidis.Client) map[string]string {
	s, err := c.Do(context.Background(), c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		out[strings.TrimPrefix(name, "cmdstat_")] = calls
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k, v := range m {
		ks = append(ks, k+"="+v)
	}
	sort.Strings(ks)
	return ks
}

// TestRedisACL runs the service under exactly the ACL user of
// docs/production.md on a throwaway redis-server, drives every Redis-side
// path of the API, and requires that Redis denied nothing (ACL LOG empty)
// and every request got its expected status. It prints the commands the
// service sent (INFO commandstats).
func TestRedisACL(t *testing.T) {
	rule := aclRule(t)
	const pw = "acl-test-5e3b9a1c"
	rule = strings.Replace(rule, ">CHANGE-ME", ">"+pw, 1)
	tokens := strings.Fields(rule)
	if len(tokens) < 3 || tokens[0] != "user" || tokens[1] != "tsp" || !strings.Contains(rule, ">"+pw) {
		t.Fatalf("the documented rule %q is not \"user tsp ... >CHANGE-ME ...\"", aclRule(t))
	}
	srv := redistest.StartServer(t)
	admin, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	if err := admin.Do(ctx, admin.B().Arbitrary("ACL", "SETUSER").Args(tokens[1:]...).Build()).Error(); err != nil {
		t.Fatalf("ACL SETUSER %s: %v", strings.Join(tokens[1:], " "), err)
	}

	// The user is really restricted: a control that this test can fail.
	limited, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, Username: "tsp", Password: pw, DisableCache: true})
	if err != nil {
		t.Fatalf("connect as tsp: %v", err)
	}
	for _, cmd := range []rueidis.Completed{
		limited.B().Flushall().Build(),
		limited.B().Get().Key("other:key").Build(),
		limited.B().Keys().Pattern("*").Build(),
		limited.B().ConfigGet().Parameter("*").Build(),
	} {
		if err := limited.Do(ctx, cmd).Error(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("as tsp, %v: %v; want NOPERM", cmd.Commands(), err)
		}
	}
	limited.Close()
	if err := admin.Do(ctx, admin.B().Arbitrary("ACL", "LOG").Args("RESET").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, admin.B().Arbitrary("CONFIG", "RESETSTAT").Build()).Error(); err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	cmd, out := start(t, "HTTP_ADDR="+addr, "REDIS_URL=redis://tsp:"+pw+"@"+srv.Addr+"/0", "REDIS_KEY_PREFIX=tsp:",
		"RATE_LIMIT_LOGIN=3/1m", "SHUTDOWN_DELAY=0s")
	waitFor(t, "http://"+addr+"/readyz", 200, out)
	tour(t, "http://"+addr, out)
	if s, _, err := get("http://" + addr + "/metrics"); err != nil || s != 200 {
		t.Fatalf("/metrics: %d, %v", s, err)
	}
	// The memory watcher reads INFO in the background from the start: wait
	// for its first reading, so the ACL is known to allow it.
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, body, _ := get("http://" + addr + "/metrics")
		if strings.Contains(body, "tsp_redisx_memory_used_bytes{") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tsp_redisx_memory_used_bytes in /metrics after 10s: the memory watcher did not read INFO\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Let the view counters' last flush and the background work run, then
	// stop the service: its shutdown (limiter leases given back) is
	// Redis-side work too.
	time.Sleep(1500 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, cmd, 15*time.Second, out)

	entries, err := admin.Do(ctx, admin.B().Arbitrary("ACL", "LOG").Build()).ToArray()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		m, _ := e.AsMap()
		var parts []string
		for _, k := range []string{"reason", "context", "object", "username"} {
			v := m[k]
			str, _ := v.ToString()
			parts = append(parts, k+"="+str)
		}
		t.Errorf("Redis denied: %s", strings.Join(parts, " "))
	}
	if strings.Contains(out.String(), "NOPERM") {
		t.Errorf("the service logged NOPERM:\n%s", out.String())
	}
	t.Logf("commands the service sent (calls): %v", sortedKeys(commandStats(t, admin)))
}

// TestComposeUsesDocumentedRedis holds compose.yaml's Redis to the guide:
// the same ACL line (plus client|setinfo, which Redis 7.2 knows), AOF
// everysec and the eviction policy the guide chooses.
func TestComposeUsesDocumentedRedis(t *testing.T) {
	b, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^\s*(user tsp on .*)$`).FindStringSubmatch(string(b))
	if line == nil {
		t.Fatal("compose.yaml has no \"user tsp on\" line")
	}
	got := strings.Replace(line[1], ">$${REDIS_PASSWORD}", ">CHANGE-ME", 1)
	got = strings.Join(strings.Fields(strings.Replace(got, " +client|setinfo", "", 1)), " ")
	if want := aclRule(t); got != want {
		t.Errorf("compose.yaml's ACL line\n%s\ndiffers from docs/production.md's\n%s", got, want)
	}
	for _, want := range []string{"appendonly yes", "appendfsync everysec", "maxmemory-policy volatile-ttl", "user default off"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("compose.yaml's Redis lacks %q", want)
		}
	}
}
