package ratelimit_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaterscriptpro/tsp/clientip"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/ratelimit"
)

// sfItem is one member of an RFC 9651 List whose items are Strings with
// Integer parameters, which is all the RateLimit fields use.
type sfItem struct {
	value  string
	params map[string]int64
	order  []string
}

// parseSFList parses an RFC 9651 List strictly, accepting only String items
// with Integer-valued parameters (what draft-ietf-httpapi-ratelimit-headers
// -11 sends). Anything else is an error.
func parseSFList(s string) ([]sfItem, error) {
	var out []sfItem
	i := 0
	skipSP := func() {
		for i < len(s) && s[i] == ' ' {
			i++
		}
	}
	skipOWS := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	skipSP() // leading SP is removed by parsers (RFC 9651 4.2)
	for {
		if i >= len(s) || s[i] != '"' {
			return nil, fmt.Errorf("at %d: want a String", i)
		}
		i++
		var b strings.Builder
		for {
			if i >= len(s) {
				return nil, errors.New("unterminated String")
			}
			c := s[i]
			i++
			if c == '\\' {
				if i >= len(s) || (s[i] != '"' && s[i] != '\\') {
					return nil, errors.New("bad escape")
				}
				b.WriteByte(s[i])
				i++
				continue
			}
			if c == '"' {
				break
			}
			if c < 0x20 || c > 0x7e {
				return nil, fmt.Errorf("byte %#x in a String", c)
			}
			b.WriteByte(c)
		}
		item := sfItem{value: b.String(), params: map[string]int64{}}
		for i < len(s) && s[i] == ';' {
			i++
			skipSP()
			start := i
			if i >= len(s) || !(s[i] >= 'a' && s[i] <= 'z' || s[i] == '*') {
				return nil, fmt.Errorf("at %d: bad key", i)
			}
			for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9' || strings.IndexByte("_-.*", s[i]) >= 0) {
				i++
			}
			key := s[start:i]
			if i >= len(s) || s[i] != '=' {
				return nil, fmt.Errorf("key %q: want an Integer value", key)
			}
			i++
			start = i
			if i < len(s) && s[i] == '-' {
				i++
			}
			digits := i
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				i++
			}
			if i == digits || i-digits > 15 || (i < len(s) && s[i] == '.') {
				return nil, fmt.Errorf("key %q: not an Integer", key)
			}
			v, _ := strconv.ParseInt(s[start:i], 10, 64)
			if _, dup := item.params[key]; !dup {
				item.order = append(item.order, key)
			}
			item.params[key] = v
		}
		out = append(out, item)
		skipOWS()
		if i == len(s) {
			return out, nil
		}
		if s[i] != ',' {
			return nil, fmt.Errorf("at %d: want a comma", i)
		}
		i++
		skipOWS()
		if i == len(s) {
			return nil, errors.New("trailing comma")
		}
	}
}

func TestParseSFListIsStrict(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{``, `api`, `"api";q`, `"api";q=1.5`, `"api";Q=1`, `"api",`, `"api" "b"`, `"a\b"`, `"api";q=1234567890123456`, `"é"`} {
		if got, err := parseSFList(bad); err == nil {
			t.Errorf("parseSFList(%q) = %+v; want an error", bad, got)
		}
	}
	got, err := parseSFList(`"a";q=1;w=2, "b\"c";r=-3`)
	if err != nil || len(got) != 2 || got[1].value != `b"c` || got[1].params["r"] != -3 {
		t.Fatalf("parseSFList = %+v, %v", got, err)
	}
}

func okHandler(status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte("ok"))
	})
}

func serve(h http.Handler, remote string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "/api/scripts", nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestHeadersParseAsStructuredFields: every header of an admission and a
// refusal is well formed and consistent, per policy.
func TestHeadersParseAsStructuredFields(t *testing.T) {
	t.Parallel()
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Client(t)
			l := newLimiter(t, rdb, ratelimit.Config{Name: "api", Algorithm: alg, Policies: []ratelimit.Policy{
				{Name: "minute", Rate: ratelimit.Rate{Limit: 3, Window: time.Minute}},
				{Name: "day", Rate: ratelimit.Rate{Limit: 100, Window: 24 * time.Hour}},
			}})
			h := l.Middleware(okHandler(200))
			for i := range 4 {
				w := serve(h, "192.0.2.1:1")
				pol, err := parseSFList(w.Header().Get("RateLimit-Policy"))
				if err != nil {
					t.Fatalf("RateLimit-Policy %q: %v", w.Header().Get("RateLimit-Policy"), err)
				}
				if len(pol) != 2 || pol[0].value != "minute" || pol[0].params["q"] != 3 || pol[0].params["w"] != 60 ||
					pol[1].value != "day" || pol[1].params["q"] != 100 || pol[1].params["w"] != 86400 {
					t.Fatalf("RateLimit-Policy = %+v; want minute q=3 w=60 and day q=100 w=86400", pol)
				}
				rl, err := parseSFList(w.Header().Get("RateLimit"))
				if err != nil {
					t.Fatalf("RateLimit %q: %v", w.Header().Get("RateLimit"), err)
				}
				if len(rl) != 2 || rl[0].value != "minute" || rl[1].value != "day" || strings.Join(rl[0].order, ",") != "r,t" {
					t.Fatalf("RateLimit = %+v; want minute and day with r and t", rl)
				}
				wantR := int64(max(0, 2-i))
				if r := rl[0].params["r"]; r != wantR {
					t.Fatalf("request %d: minute r=%d; want %d", i+1, r, wantR)
				}
				if tt := rl[0].params["t"]; tt < 1 || tt > 66 {
					t.Fatalf("request %d: minute t=%d; want 1..66 s", i+1, tt)
				}
				// Legacy headers follow the binding (minute) policy.
				if got := w.Header().Get("X-RateLimit-Limit"); got != "3" {
					t.Fatalf("X-RateLimit-Limit = %q; want 3", got)
				}
				if got := w.Header().Get("X-RateLimit-Remaining"); got != strconv.FormatInt(wantR, 10) {
					t.Fatalf("X-RateLimit-Remaining = %q; want %d", got, wantR)
				}
				reset, err := strconv.ParseInt(w.Header().Get("X-RateLimit-Reset"), 10, 64)
				if now := time.Now().Unix(); err != nil || reset < now || reset > now+70 {
					t.Fatalf("X-RateLimit-Reset = %q; want Unix seconds within the next 70 s", w.Header().Get("X-RateLimit-Reset"))
				}
				if i < 3 {
					if w.Code != 200 || w.Header().Get("Retry-After") != "" {
						t.Fatalf("request %d: %d, Retry-After %q; want 200 and none", i+1, w.Code, w.Header().Get("Retry-After"))
					}
					continue
				}
				if w.Code != http.StatusTooManyRequests {
					t.Fatalf("request 4: status %d; want 429", w.Code)
				}
				ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
				if err != nil || ra < 1 || ra > 66 {
					t.Fatalf("Retry-After %q; want 1..66 seconds", w.Header().Get("Retry-After"))
				}
				if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
					t.Fatalf("Content-Type %q; want application/problem+json", ct)
				}
				var p struct {
					Type, Title, Detail string
					Status              int
				}
				if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != 429 || p.Title == "" || p.Detail == "" {
					t.Fatalf("body %s (%v); want a 429 problem", w.Body.String(), err)
				}
			}
		})
	}
}

// TestRetryAfterIsHonoured: a client that waits Retry-After seconds after a
// 429 is admitted, on every algorithm.
func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Client(t)
			l := newLimiter(t, rdb, ratelimit.Config{Algorithm: alg, Rate: ratelimit.Rate{Limit: 3, Window: 2 * time.Second},
				Policies: nil, Buckets: 4})
			h := l.Middleware(okHandler(200))
			for round := range 2 {
				var w *httptest.ResponseRecorder
				for n := 0; ; n++ {
					if w = serve(h, "192.0.2.1:1"); w.Code == 429 {
						break
					}
					if n > 10 {
						t.Fatal("never refused")
					}
				}
				ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
				if err != nil || ra < 1 {
					t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
				}
				time.Sleep(time.Duration(ra) * time.Second)
				if w := serve(h, "192.0.2.1:1"); w.Code != 200 {
					t.Fatalf("round %d: after waiting Retry-After %d s: status %d; want 200", round, ra, w.Code)
				}
			}
		})
	}
}

func mustPrefixes(tb testing.TB, s string) []netip.Prefix {
	tb.Helper()
	p, err := clientip.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestForgedForwardedForIsIgnored(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	res := clientip.Resolver{Trusted: mustPrefixes(t, "10.0.0.0/8")}
	l := newLimiter(t, rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 3, Window: time.Minute}, Key: ratelimit.KeyByIP(res)})
	h := l.Middleware(okHandler(200))
	// An untrusted peer rotating forged X-Forwarded-For values: one bucket.
	codes := ""
	for i := range 6 {
		codes += strconv.Itoa(serve(h, "198.51.100.7:999", "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i)).Code) + " "
	}
	if codes != "200 200 200 429 429 429 " {
		t.Fatalf("statuses %s; want 3 admitted then refused: forged XFF must not give new buckets", codes)
	}
	// Behind the trusted proxy, two clients have two buckets, and a forged
	// left entry does not move the client to another bucket.
	for i := range 3 {
		if w := serve(h, "10.0.0.1:80", "X-Forwarded-For", fmt.Sprintf("6.6.6.%d, 203.0.113.50", i)); w.Code != 200 {
			t.Fatalf("client A request %d: %d", i, w.Code)
		}
	}
	if w := serve(h, "10.0.0.1:80", "X-Forwarded-For", "203.0.113.50"); w.Code != 429 {
		t.Fatalf("client A 4th request: %d; want 429", w.Code)
	}
	if w := serve(h, "10.0.0.1:80", "X-Forwarded-For", "203.0.113.51"); w.Code != 200 {
		t.Fatalf("client B: %d; want 200", w.Code)
	}
}

func TestIPv6SlashSixtyFourSharesABucket(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	l := newLimiter(t, rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 3, Window: time.Minute}})
	h := l.Middleware(okHandler(200))
	for _, a := range []string{"[2001:db8:1:2::1]:1", "[2001:db8:1:2::2]:1", "[2001:db8:1:2:ffff:ffff:ffff:ffff]:1"} {
		if w := serve(h, a); w.Code != 200 {
			t.Fatalf("%s: %d", a, w.Code)
		}
	}
	if w := serve(h, "[2001:db8:1:2:abcd::9]:1"); w.Code != 429 {
		t.Fatalf("a 4th address in the same /64: %d; want 429", w.Code)
	}
	if w := serve(h, "[2001:db8:1:3::1]:1"); w.Code != 200 {
		t.Fatalf("the next /64: %d; want 200", w.Code)
	}
	// IPv4-mapped IPv6 is the IPv4 address.
	for range 3 {
		serve(h, "192.0.2.9:1")
	}
	if w := serve(h, "[::ffff:192.0.2.9]:1"); w.Code != 429 {
		t.Fatalf("::ffff:192.0.2.9 after 3 from 192.0.2.9: %d; want 429", w.Code)
	}
}

func TestKeyByUser(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	user := func(r *http.Request) (string, bool) {
		id := r.Header.Get("X-Test-User")
		return id, id != ""
	}
	l := newLimiter(t, rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 2, Window: time.Minute}, Key: ratelimit.KeyByUser(user, clientip.Resolver{})})
	h := l.Middleware(okHandler(200))
	// One user from many addresses: one bucket.
	for i, want := range []int{200, 200, 429} {
		if w := serve(h, fmt.Sprintf("198.51.100.%d:1", i), "X-Test-User", "u1"); w.Code != want {
			t.Fatalf("user request %d: %d; want %d", i, w.Code, want)
		}
	}
	// Anonymous requests from one address are limited by the address,
	// separately from the user who came from it.
	for i, want := range []int{200, 200, 429} {
		if w := serve(h, "198.51.100.0:1"); w.Code != want {
			t.Fatalf("anonymous request %d: %d; want %d", i, w.Code, want)
		}
	}
}

func TestSkipRulesAndRefunds(t *testing.T) {
	t.Parallel()
	rate := ratelimit.Rate{Limit: 2, Window: time.Minute}
	for _, tt := range []struct {
		name   string
		cfg    ratelimit.Config
		status int
		want   string
	}{
		{"skip", ratelimit.Config{Rate: rate, Skip: func(r *http.Request) bool { return true }}, 200, "200 200 200 200"},
		{"skip successful: successes free", ratelimit.Config{Rate: rate, SkipSuccessful: true}, 200, "200 200 200 200"},
		{"skip successful: failures count", ratelimit.Config{Rate: rate, SkipSuccessful: true}, 401, "401 401 429 429"},
		{"skip failed: failures free", ratelimit.Config{Rate: rate, SkipFailed: true}, 500, "500 500 500 500"},
		{"skip failed: successes count", ratelimit.Config{Rate: rate, SkipFailed: true}, 200, "200 200 429 429"},
		{"cost", ratelimit.Config{Rate: ratelimit.Rate{Limit: 5, Window: time.Minute}, Cost: func(*http.Request) int { return 2 }}, 200, "200 200 429 429"},
		{"cost over the limit", ratelimit.Config{Rate: rate, Cost: func(*http.Request) int { return 3 }}, 200, "429 429 429 429"},
		{"dry run", ratelimit.Config{Rate: rate, DryRun: true}, 200, "200 200 200 200"},
		{"off", ratelimit.Config{}, 200, "200 200 200 200"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Client(t)
			l := newLimiter(t, rdb, tt.cfg)
			h := l.Middleware(okHandler(tt.status))
			var got []string
			var last *httptest.ResponseRecorder
			for range 4 {
				last = serve(h, "192.0.2.1:1")
				got = append(got, strconv.Itoa(last.Code))
			}
			if s := strings.Join(got, " "); s != tt.want {
				t.Fatalf("statuses %s; want %s", s, tt.want)
			}
			quiet := tt.cfg.DryRun || tt.cfg.Skip != nil || tt.cfg.Rate.Off()
			if has := last.Header().Get("RateLimit-Policy") != ""; has == quiet {
				t.Fatalf("RateLimit-Policy header present = %v; want %v", has, !quiet)
			}
			if tt.name == "cost over the limit" && last.Header().Get("Retry-After") != "" {
				t.Fatalf("a never-retryable refusal sent Retry-After %q", last.Header().Get("Retry-After"))
			}
			if !tt.cfg.Rate.Off() {
				checkTTLs(t, rdb)
			}
			if tt.cfg.DryRun {
				if got := counterValue(t, l.Collector(), "ratelimit_dry_run_refusals_total"); got != 2 {
					t.Fatalf("dry-run refusals counted %v; want 2", got)
				}
			}
		})
	}
}

func TestHeaderModes(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	for _, tt := range []struct {
		mode            ratelimit.HeaderMode
		draft, legacy   bool
		refusalHasRetry bool
	}{
		{ratelimit.HeadersAll, true, true, true},
		{ratelimit.HeadersDraft, true, false, true},
		{ratelimit.HeadersNone, false, false, true},
	} {
		l := newLimiter(t, rdb, ratelimit.Config{Name: "m" + strconv.Itoa(int(tt.mode)), Headers: tt.mode, Rate: ratelimit.Rate{Limit: 1, Window: time.Minute}})
		h := l.Middleware(okHandler(200))
		serve(h, "192.0.2.1:1")
		w := serve(h, "192.0.2.1:1")
		if got := w.Header().Get("RateLimit") != ""; got != tt.draft {
			t.Errorf("mode %d: RateLimit present %v; want %v", tt.mode, got, tt.draft)
		}
		if got := w.Header().Get("X-RateLimit-Limit") != ""; got != tt.legacy {
			t.Errorf("mode %d: X-RateLimit-Limit present %v; want %v", tt.mode, got, tt.legacy)
		}
		if got := w.Header().Get("Retry-After") != ""; got != tt.refusalHasRetry {
			t.Errorf("mode %d: Retry-After present %v; want %v", tt.mode, got, tt.refusalHasRetry)
		}
	}
}

// TestHostileRequests: requests with no usable address or absurd headers
// are limited (in a shared bucket), never let through or crashed on.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	var calls atomic.Int64
	l := newLimiter(t, rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 2, Window: time.Minute},
		Key: ratelimit.KeyByIP(clientip.Resolver{Trusted: mustPrefixes(t, "0.0.0.0/0")})})
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	hostile := [][]string{
		{"X-Forwarded-For", "\x00\xff{}*?[]"},
		{"X-Forwarded-For", strings.Repeat("x", 64<<10)},
		{"X-Forwarded-For", "}{ratelimit:{evil}"},
	}
	codes := ""
	for _, hdr := range hostile {
		codes += strconv.Itoa(serve(h, "garbage", hdr...).Code) + " "
	}
	if codes != "200 200 429 " {
		t.Fatalf("statuses %s; want the unknown-address bucket to fill: 200 200 429", codes)
	}
	// A custom key function handing client bytes to the limiter: the key
	// builder escapes them, so they cannot add a hash tag or a glob.
	l2 := newLimiter(t, rdb, ratelimit.Config{Name: "custom", Rate: ratelimit.Rate{Limit: 2, Window: time.Minute},
		Key: func(r *http.Request) string { return r.Header.Get("X-Forwarded-For") }})
	h2 := l2.Middleware(okHandler(200))
	for _, hdr := range hostile {
		if w := serve(h2, "192.0.2.1:1", hdr...); w.Code != 200 {
			t.Fatalf("custom key %.20q: %d; want 200 (a bucket of its own)", hdr[1], w.Code)
		}
	}
	for _, k := range redistest.Keys(t, rdb) {
		if strings.ContainsAny(k, "\x00\xff*?[]") || strings.Count(k, "{") != 1 {
			t.Fatalf("key %q carries hostile bytes or a second hash tag", k)
		}
	}
}

// counterValue sums the counter named name that c collects.
func counterValue(tb testing.TB, c prometheus.Collector, name string) float64 {
	tb.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		tb.Fatalf("register: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
