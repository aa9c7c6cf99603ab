package httpapi

// Security tests (issue 8, "hostile input"): session fixation by cookie,
// credential stuffing against the limiters (and X-Forwarded-For spoofing
// to dodge them), account enumeration by status, body, headers and time,
// cache poisoning through unkeyed headers and Host, private responses,
// IDOR on scripts, licences and sessions, oversized headers, slow-loris,
// and secrets (passwords, tokens, the Redis password) in logs, errors and
// metrics. What auth_test.go, logs_test.go and scripts_test.go already
// cover (bearer-token fixation, the login limiter's headers, hostile
// bodies) is not repeated.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/ratelimit"
)

func TestSecuritySessionFixationByCookie(t *testing.T) {
	in := newInstance(t, options{})
	a := signUp(t, in, theater.RoleProducer)
	c := in.client(t)
	chosen := a.user.ID + "." + strings.Repeat("B", 43)
	r := c.do("POST", "/api/auth/login", map[string]any{"email": a.email, "password": a.pass},
		"Cookie", "tsp_session="+chosen)
	want(t, r, http.StatusOK, "login presenting a chosen cookie")
	var lr loginResponse
	r.json(t, &lr)
	if lr.Token == chosen || strings.Contains(r.header.Get("Set-Cookie"), chosen) {
		t.Fatal("sign-in adopted the client's cookie value as the session")
	}
	if !strings.Contains(r.header.Get("Set-Cookie"), "tsp_session="+lr.Token) {
		t.Fatalf("Set-Cookie %q does not carry the new token", r.header.Get("Set-Cookie"))
	}
	want(t, c.do("GET", "/api/me", nil, "Cookie", "tsp_session="+chosen), http.StatusUnauthorized, "the chosen cookie")
	want(t, c.do("GET", "/api/me", nil, "Cookie", "tsp_session="+lr.Token), http.StatusOK, "the issued cookie")

	// Signing in while presenting a session rotates it: a new token, and
	// the presented one ends.
	r = c.do("POST", "/api/auth/login", map[string]any{"email": a.email, "password": a.pass},
		"Cookie", "tsp_session="+lr.Token)
	want(t, r, http.StatusOK, "second login presenting the first cookie")
	var lr2 loginResponse
	r.json(t, &lr2)
	if lr2.Token == lr.Token {
		t.Fatal("a second sign-in reused the presented session instead of issuing a new one")
	}
	want(t, c.do("GET", "/api/me", nil, "Cookie", "tsp_session="+lr.Token), http.StatusUnauthorized, "the session presented at sign-in")
	// Logging out ends that session at once and leaves another alone.
	r = c.do("POST", "/api/auth/login", map[string]any{"email": a.email, "password": a.pass})
	want(t, r, http.StatusOK, "independent login")
	var lr3 loginResponse
	r.json(t, &lr3)
	c.token = lr2.Token
	want(t, c.do("POST", "/api/auth/logout", nil), http.StatusNoContent, "logout")
	want(t, c.do("GET", "/api/me", nil), http.StatusUnauthorized, "the logged-out token")
	c.token = lr3.Token
	want(t, c.do("GET", "/api/me", nil), http.StatusOK, "the other session after logout")
	// Sign out everywhere ends every session, the presenting one included.
	want(t, c.do("DELETE", "/api/sessions", nil), http.StatusNoContent, "sign out everywhere")
	want(t, c.do("GET", "/api/me", nil), http.StatusUnauthorized, "after sign out everywhere")
	want(t, a.c.do("GET", "/api/me", nil), http.StatusUnauthorized, "the sign-up session after sign out everywhere")
}

// TestSecurityCredentialStuffing: a password spray from one address hits
// the API limit (per IP), guessing one account hits the login limit (per
// IP + email), and a client cannot dodge either by inventing
// X-Forwarded-For values unless it is a trusted proxy.
func TestSecurityCredentialStuffing(t *testing.T) {
	in := newInstance(t, options{edit: func(d *Deps) {
		d.APIRate = ratelimit.Rate{Limit: 12, Window: time.Minute}
		d.LoginRate = ratelimit.Rate{Limit: 3, Window: time.Minute}
	}})
	victim := signUp(t, in, theater.RoleProducer) // 2 of the IP's 12 requests
	c := in.client(t)
	try := func(email string, headers ...string) resp {
		return c.do("POST", "/api/auth/login", map[string]any{"email": email, "password": "password123 guess"}, headers...)
	}

	// One account: the fourth guess is refused, even from "other" addresses
	// named in a spoofed X-Forwarded-For, and even with the right password.
	for i := range 3 {
		want(t, try(victim.email, "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i)), http.StatusUnauthorized, "guess")
	}
	r := try(victim.email, "X-Forwarded-For", "198.51.100.7")
	want(t, r, http.StatusTooManyRequests, "fourth guess with a spoofed X-Forwarded-For")
	r = c.do("POST", "/api/auth/login", map[string]any{"email": strings.ToUpper(victim.email), "password": victim.pass})
	want(t, r, http.StatusTooManyRequests, "right password after the guesses")

	// A spray over many accounts: each email is new to the login limiter,
	// so the per-IP API limit is what stops it.
	refusedAt := -1
	for i := range 20 {
		r := try(uniqueEmail("spray"), "X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i))
		if r.status == http.StatusTooManyRequests {
			refusedAt = i
			break
		}
		want(t, r, http.StatusUnauthorized, "spray attempt")
	}
	if refusedAt < 0 || refusedAt > 8 {
		t.Fatalf("a spray over 20 accounts from one address was refused at attempt %d; want the per-IP API limit (12/min, 7 used) to stop it by the 8th", refusedAt)
	}

	// Behind a trusted proxy the forwarded address is the client: a second
	// client behind it has budgets of its own, the first stays limited.
	proxied := newInstance(t, options{edit: func(d *Deps) {
		d.LoginRate = ratelimit.Rate{Limit: 3, Window: time.Minute}
		d.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
	}})
	v2 := signUp(t, proxied, theater.RoleProducer)
	pc := proxied.client(t)
	for range 3 {
		want(t, pc.do("POST", "/api/auth/login", map[string]any{"email": v2.email, "password": "wrong guess here"}, "X-Forwarded-For", "203.0.113.10"), 401, "guess via proxy")
	}
	want(t, pc.do("POST", "/api/auth/login", map[string]any{"email": v2.email, "password": v2.pass}, "X-Forwarded-For", "203.0.113.10"), 429, "same client via proxy")
	want(t, pc.do("POST", "/api/auth/login", map[string]any{"email": v2.email, "password": v2.pass}, "X-Forwarded-For", "203.0.113.11"), 200, "another client via proxy")
}

// TestSecurityAccountEnumeration: an unknown email and a wrong password get
// the same status, the same body, the same set of headers and a similar
// time, over several samples.
func TestSecurityAccountEnumeration(t *testing.T) {
	in := newInstance(t, options{})
	a := signUp(t, in, theater.RoleProducer)
	c := in.client(t)
	type sample struct {
		r    resp
		took time.Duration
	}
	run := func(email string) sample {
		start := time.Now()
		r := c.do("POST", "/api/auth/login", map[string]any{"email": email, "password": "not the password"})
		return sample{r, time.Since(start)}
	}
	headerNames := func(h http.Header) []string {
		var out []string
		for k := range h {
			switch k {
			case "Date", "X-Request-Id", "Content-Length":
				continue // differ per response, not per account
			}
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	var unknown, wrong []time.Duration
	for i := range 5 {
		u := run(uniqueEmail("nobody"))
		w := run(a.email)
		want(t, u.r, http.StatusUnauthorized, "unknown email")
		want(t, w.r, http.StatusUnauthorized, "wrong password")
		var pu, pw problemBody
		u.r.json(t, &pu)
		w.r.json(t, &pw)
		if pu != pw {
			t.Fatalf("bodies differ: unknown email %s, wrong password %s", u.r.body, w.r.body)
		}
		if hu, hw := headerNames(u.r.header), headerNames(w.r.header); !slices.Equal(hu, hw) {
			t.Fatalf("header sets differ: unknown email %v, wrong password %v", hu, hw)
		}
		if i > 0 { // the first pair warms caches
			unknown = append(unknown, u.took)
			wrong = append(wrong, w.took)
		}
	}
	slices.Sort(unknown)
	slices.Sort(wrong)
	mu, mw := unknown[len(unknown)/2], wrong[len(wrong)/2]
	t.Logf("median sign-in time: unknown email %v, wrong password %v", mu, mw)
	if mu < mw/2 || mu > mw*2 {
		t.Fatalf("median time for an unknown email %v vs a wrong password %v: more than 2x apart, which tells accounts apart", mu, mw)
	}
}

// TestSecurityCachePoisoning: headers the cache does not key on, and the
// Host header, never change what a later clean request gets.
func TestSecurityCachePoisoning(t *testing.T) {
	in := newInstance(t, options{})
	author := signUp(t, in, theater.RolePlaywright)
	r := author.c.do("POST", "/api/scripts", scriptBody("Poison target"))
	want(t, r, http.StatusCreated, "create")
	var sc theater.Script
	r.json(t, &sc)
	anon := in.client(t)
	paths := []string{"/api/scripts/" + sc.ID, "/api/scripts?limit=5", "/api/users/" + author.user.ID + "/scripts"}
	hostile := [][]string{
		{"X-Forwarded-Host", "evil.example"},
		{"X-Forwarded-Proto", "gopher"},
		{"X-Forwarded-Prefix", "/evil"},
		{"X-Original-URL", "/api/me"},
		{"X-Rewrite-URL", "/api/licenses"},
		{"X-HTTP-Method-Override", "DELETE"},
		{"Forwarded", "host=evil.example;proto=http"},
		{"Accept", "text/html"},
		{"Accept-Encoding", "evil"},
		{"Accept-Language", "xx-EVIL"},
		{"User-Agent", "<script>alert(1)</script>"},
		{"Origin", "https://evil.example"},
		{"Cookie", "other_cookie=evil.example"},
		{"X-Request-ID", "evil-request-id"},
	}
	for _, path := range paths {
		// Each attempt is the first request for the key (a purge between
		// attempts), so a poisoned response would be the one stored.
		for _, h := range hostile {
			want(t, author.c.do("PUT", "/api/scripts/"+sc.ID, scriptBody("Poison target")), http.StatusOK, "purge by update")
			bad := anon.do("GET", path, nil, h[0], h[1])
			want(t, bad, http.StatusOK, path+" with "+h[0])
			clean := anon.do("GET", path, nil)
			want(t, clean, http.StatusOK, path+" clean")
			for _, body := range [][]byte{bad.body, clean.body} {
				if strings.Contains(string(body), "evil") || strings.Contains(string(body), "<script>") {
					t.Fatalf("%s with %s: body reflects the header: %s", path, h[0], body)
				}
			}
			for k, vs := range clean.header {
				for _, v := range vs {
					if strings.Contains(v, "evil") && k != "X-Request-Id" {
						t.Fatalf("%s: clean request after %s got header %s: %s", path, h[0], k, v)
					}
				}
			}
			if ct := clean.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("%s: clean request after %s got Content-Type %q", path, h[0], ct)
			}
			if clean.header.Get("X-Request-Id") == "evil-request-id" {
				t.Fatalf("%s: a stored response replayed another request's X-Request-ID", path)
			}
		}
	}
	// Host: the service builds no absolute URL from it, and a response to a
	// request with a hostile Host is the same as any other.
	for _, path := range paths {
		req, err := http.NewRequest("GET", in.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "evil.example"
		res, err := in.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(b), "evil") {
			t.Fatalf("%s with Host evil.example: body reflects it: %s", path, b)
		}
		clean := anon.do("GET", path, nil)
		if strings.Contains(string(clean.body), "evil") || strings.Contains(fmt.Sprint(clean.header), "evil.example") {
			t.Fatalf("%s: clean request after a hostile Host got %v %s", path, clean.header, clean.body)
		}
	}
}

// TestSecurityPrivateResponses: what one user sees is never served to
// another, nor stored by the shared cache.
func TestSecurityPrivateResponses(t *testing.T) {
	in := newInstance(t, options{})
	author := signUp(t, in, theater.RolePlaywright)
	a := signUp(t, in, theater.RoleProducer)
	b := signUp(t, in, theater.RoleProducer)
	r := author.c.do("POST", "/api/scripts", scriptBody("Private test"))
	want(t, r, http.StatusCreated, "create")
	var sc theater.Script
	r.json(t, &sc)
	want(t, a.c.do("POST", "/api/scripts/"+sc.ID+"/licenses", map[string]any{"type": "perusal"}), http.StatusCreated, "licence for a")

	for _, path := range []string{"/api/me", "/api/licenses", "/api/sessions"} {
		ra := a.c.do("GET", path, nil)
		want(t, ra, http.StatusOK, "a "+path)
		if cc := ra.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") && !strings.Contains(cc, "private") {
			t.Errorf("%s: Cache-Control %q; want private or no-store", path, cc)
		}
		rb := b.c.do("GET", path, nil)
		want(t, rb, http.StatusOK, "b "+path)
		if strings.Contains(string(rb.body), a.user.ID) || strings.Contains(string(rb.body), a.email) {
			t.Fatalf("%s for b carries a's data: %s", path, rb.body)
		}
		if x := rb.header.Get("X-Cache"); x == "HIT" {
			t.Fatalf("%s for b was a cache HIT", path)
		}
	}
	var lb struct{ Items []theater.License }
	b.c.do("GET", "/api/licenses", nil).json(t, &lb)
	if len(lb.Items) != 0 {
		t.Fatalf("b sees %d licences; b has none", len(lb.Items))
	}
	// The catalogue routes are Public (identical for everyone), so a read
	// made with credentials may fill the cache: what it stores must carry
	// nothing of that user, no cookie and no private marking.
	want(t, author.c.do("PUT", "/api/scripts/"+sc.ID, scriptBody("Private test")), http.StatusOK, "purge")
	for _, path := range []string{"/api/scripts/" + sc.ID, "/api/scripts?limit=5", "/api/users/" + author.user.ID + "/scripts"} {
		signed := a.c.do("GET", path, nil, "Cookie", "tsp_session="+a.c.token)
		want(t, signed, http.StatusOK, "signed-in public read "+path)
		anon := in.client(t).do("GET", path, nil)
		want(t, anon, http.StatusOK, "anonymous read after "+path)
		if string(anon.body) != string(signed.body) {
			t.Errorf("%s: the anonymous read got a different body than the signed-in one:\n%s\n%s", path, anon.body, signed.body)
		}
		for _, leak := range []string{a.user.ID, a.email, a.c.token} {
			if strings.Contains(string(anon.body), leak) || strings.Contains(fmt.Sprint(anon.header), leak) {
				t.Fatalf("%s: the anonymous read carries the signed-in user's data", path)
			}
		}
		if len(anon.header.Values("Set-Cookie")) > 0 {
			t.Fatalf("%s: an anonymous read got Set-Cookie %v", path, anon.header.Values("Set-Cookie"))
		}
	}
}

// TestSecurityIDOR: ids in paths never let one user act on another's
// scripts, licences or sessions.
func TestSecurityIDOR(t *testing.T) {
	in := newInstance(t, options{})
	owner := signUp(t, in, theater.RolePlaywright)
	other := signUp(t, in, theater.RolePlaywright)
	producer := signUp(t, in, theater.RoleProducer)
	r := owner.c.do("POST", "/api/scripts", scriptBody("Mine"))
	want(t, r, http.StatusCreated, "create")
	var sc theater.Script
	r.json(t, &sc)

	for _, who := range []account{other, producer} {
		for _, rt := range []struct{ method, path string }{{"PUT", "/api/scripts/" + sc.ID}, {"DELETE", "/api/scripts/" + sc.ID}} {
			r := who.c.do(rt.method, rt.path, scriptBody("Hijacked"))
			if r.status != http.StatusForbidden && r.status != http.StatusNotFound {
				t.Fatalf("%s %s by %s: status %d; want 403 or 404", rt.method, rt.path, who.user.Role, r.status)
			}
			want(t, r, r.status, rt.method+" by another user")
		}
	}
	var got theater.Script
	in.client(t).do("GET", "/api/scripts/"+sc.ID, nil).json(t, &got)
	if got.Title != "Mine" {
		t.Fatalf("title %q after others tried to change it", got.Title)
	}
	// Licences: the list is the caller's; a licence names the caller even
	// when the body tries to name someone else.
	r = producer.c.raw("POST", "/api/scripts/"+sc.ID+"/licenses", []byte(`{"type":"perusal","userId":"`+other.user.ID+`"}`))
	if r.status == http.StatusCreated {
		var l theater.License
		r.json(t, &l)
		if l.UserID != producer.user.ID {
			t.Fatalf("a licence created by %s names user %s", producer.user.ID, l.UserID)
		}
	} else {
		want(t, r, http.StatusBadRequest, "licence naming another user")
	}
	want(t, producer.c.do("POST", "/api/scripts/"+sc.ID+"/licenses", map[string]any{"type": "perusal"}), http.StatusCreated, "own licence")
	var lo struct{ Items []theater.License }
	other.c.do("GET", "/api/licenses", nil).json(t, &lo)
	if len(lo.Items) != 0 {
		t.Fatalf("another user lists %d licences of the producer", len(lo.Items))
	}
	want(t, producer.c.do("POST", "/api/scripts/"+theater.NewID()+"/licenses", map[string]any{"type": "perusal"}), http.StatusNotFound, "licence on a script that does not exist")

	// Sessions: another user's session id is "not found", and stays alive.
	var mine struct{ Items []struct{ ID string } }
	owner.c.do("GET", "/api/sessions", nil).json(t, &mine)
	if len(mine.Items) == 0 {
		t.Fatal("no sessions listed")
	}
	want(t, other.c.do("DELETE", "/api/sessions/"+mine.Items[0].ID, nil), http.StatusNotFound, "deleting another user's session")
	want(t, owner.c.do("GET", "/api/me", nil), http.StatusOK, "the owner after another tried to end the session")
	var theirs struct{ Items []struct{ ID string } }
	other.c.do("GET", "/api/sessions", nil).json(t, &theirs)
	for _, s := range theirs.Items {
		if s.ID == mine.Items[0].ID {
			t.Fatal("another user's session list shows the owner's session")
		}
	}
}

// theaterdServer is a copy of the http.Server limits cmd/theaterd sets
// (package main exports nothing to import); keep the two in step.
// ReadHeaderTimeout is shortened here so the slow-loris test takes
// milliseconds; the other values are main's.
func theaterdServer(h http.Handler, readHeaderTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout, // main: 5s
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// startTheaterd serves in's API with main's limits on a loopback port.
func startTheaterd(t *testing.T, in *instance, readHeaderTimeout time.Duration) string {
	t.Helper()
	ts := httptest.NewUnstartedServer(in.api)
	ts.Config = theaterdServer(in.api, readHeaderTimeout)
	ts.Start()
	t.Cleanup(ts.Close)
	return ts.Listener.Addr().String()
}

func TestSecurityOversizedHeaders(t *testing.T) {
	in := newInstance(t, options{})
	addr := startTheaterd(t, in, 2*time.Second)
	for _, tc := range []struct {
		name   string
		header string
		status int
	}{
		{"one 100 KiB header", "X-Big: " + strings.Repeat("a", 100<<10), http.StatusRequestHeaderFieldsTooLarge},
		{"2000 small headers", strings.TrimSuffix(strings.Repeat("X-Many: "+strings.Repeat("a", 40)+"\r\n", 2000), "\r\n"), http.StatusRequestHeaderFieldsTooLarge},
		{"100 KiB cookie", "Cookie: tsp_session=" + strings.Repeat("a", 100<<10), http.StatusRequestHeaderFieldsTooLarge},
		{"8 KiB bearer token", "Authorization: Bearer " + strings.Repeat("a", 8<<10), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n%s\r\nConnection: close\r\n\r\n", tc.header)
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d; want %d", res.StatusCode, tc.status)
			}
		})
	}
	// The server still serves normal requests.
	res, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("healthz after the oversized requests: %d", res.StatusCode)
	}
}

// TestSecuritySlowLoris: a client that sends its headers a byte at a time
// is cut off after ReadHeaderTimeout, and many such clients do not keep
// the server from answering others.
func TestSecuritySlowLoris(t *testing.T) {
	in := newInstance(t, options{})
	const timeout = 300 * time.Millisecond
	addr := startTheaterd(t, in, timeout)
	var conns []net.Conn
	for range 50 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		t.Cleanup(func() { c.Close() })
		_, _ = c.Write([]byte("GET /api/scripts HTTP/1.1\r\nHost: x\r\n"))
	}
	// Others are served meanwhile.
	res, err := http.Get("http://" + addr + "/api/scripts?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("a normal request while 50 slow clients hang: %d", res.StatusCode)
	}
	// Keep trickling; the server must close each connection soon after the
	// header deadline.
	start := time.Now()
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, err := c.Write([]byte("X")); err != nil {
				break // closed by the server
			}
			_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			buf := make([]byte, 512)
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					if time.Since(start) > timeout+3*time.Second {
						t.Fatalf("slow connection #%d still open %v after it started; want it closed after ReadHeaderTimeout %v", i, time.Since(start), timeout)
					}
					continue
				}
				break // EOF or reset: closed
			}
			break // the server answered (408 or 400) and closes
		}
	}
	if took := time.Since(start); took > timeout+3*time.Second {
		t.Fatalf("closing the slow clients took %v", took)
	}
}

// TestSecurityNoSecretsInLogsErrorsMetrics runs sign-ins (right and wrong),
// signed-in calls and a Redis outage against a Redis with a password, and
// checks that no password, token or the Redis password appears in any log
// line, response body or header, or the metrics.
func TestSecurityNoSecretsInLogsErrorsMetrics(t *testing.T) {
	const redisPass = "Redis-Pass-7d1f-SECRET"
	srv := redistest.StartServer(t, "--requirepass", redisPass)
	cfg := redistest.Config(t)
	cfg = redistest.At(cfg, srv.Addr)
	cfg.Password = redisPass
	cfg.CommandTimeout = 200 * time.Millisecond
	in := newInstance(t, options{redis: cfg})
	a := signUp(t, in, theater.RoleProducer)
	anon := in.client(t)
	wrongPass := "wrong-" + a.pass
	var seen []string // every response body and header
	keep := func(r resp) { seen = append(seen, string(r.body), fmt.Sprint(r.header)) }

	keep(anon.do("POST", "/api/auth/login", map[string]any{"email": a.email, "password": wrongPass}))
	keep(anon.do("POST", "/api/auth/login", map[string]any{"email": uniqueEmail("ghost"), "password": wrongPass}))
	keep(anon.do("POST", "/api/auth/register", map[string]any{"email": a.email, "password": a.pass, "name": "dup", "role": "producer"}))
	keep(anon.do("POST", "/api/auth/register", map[string]any{"email": "not an email", "password": a.pass, "name": "x", "role": "producer"}))
	keep(anon.do("POST", "/api/auth/login", map[string]any{"email": a.email, "password": strings.Repeat("p", 200)}))
	keep(a.c.do("GET", "/api/me", nil))
	keep(a.c.do("GET", "/api/sessions", nil))
	keep(anon.do("GET", "/api/me", nil, "Authorization", "Bearer "+a.c.token+"x"))

	srv.Kill() // Redis errors now: they must not carry the password either
	keep(a.c.do("GET", "/api/me", nil))
	keep(anon.do("POST", "/api/auth/login", map[string]any{"email": a.email, "password": a.pass}))
	keep(anon.do("GET", "/api/scripts", nil))
	keep(anon.do("GET", "/readyz", nil))
	metrics := anon.do("GET", "/metrics", nil)
	want(t, metrics, http.StatusOK, "metrics")
	srv.Start(t)

	secrets := map[string]string{
		"the user's password": a.pass, "a wrong password": wrongPass, "the session token": a.c.token,
		"the Redis password": redisPass,
	}
	// The token's secret half alone is a secret too.
	if i := strings.LastIndexByte(a.c.token, '.'); i > 0 {
		secrets["the token's secret part"] = a.c.token[i+1:]
	}
	check := func(where, text string) {
		for name, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("%s carries %s", where, name)
			}
		}
	}
	check("the log", in.logs.String())
	check("the metrics", string(metrics.body))
	for i, s := range seen {
		// The token is legitimately in the sign-in answer that issued it,
		// which is not among these.
		check(fmt.Sprintf("response #%d", i), s)
	}
	if !strings.Contains(in.logs.String(), `"msg":"request"`) {
		t.Fatal("no request was logged; the check proves nothing")
	}
}
