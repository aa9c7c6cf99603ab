package ratelimit_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/ratelimit"
)

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"600/1m", "5/1m", "off", "OFF", " 10/10s ", "0/1m", "1/500ms", "1000000000/168h", "1/1h0m0.001s", "-1/1m", "1/-1s", "١٠/1m", "1e3/1m", "/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ratelimit.ParseRate(s)
		if err != nil {
			if r != (ratelimit.Rate{}) {
				t.Fatalf("ParseRate(%q) = %+v with error %v; want the zero Rate", s, r, err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") && !strings.ContainsAny(s, "\n\r") {
				t.Fatalf("error spans lines: %q", err)
			}
			return
		}
		if r.Off() {
			return
		}
		if r.Limit < 1 || r.Limit > ratelimit.MaxLimit || r.Window < ratelimit.MinWindow || r.Window > ratelimit.MaxWindow || r.Window%time.Millisecond != 0 {
			t.Fatalf("ParseRate(%q) = %+v: out of bounds", s, r)
		}
		// What String writes, ParseRate reads back the same.
		back, err := ratelimit.ParseRate(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseRate(%q) = %+v, but ParseRate(%q) = %+v, %v", s, r, r.String(), back, err)
		}
	})
}

// FuzzHeaders drives the header formatting with arbitrary limits, windows,
// names and costs, and checks that what the middleware sends always parses
// as RFC 9651 structured fields and agrees with the configuration.
func FuzzHeaders(f *testing.F) {
	f.Add(uint32(600), uint32(60_000), "api", uint8(1))
	f.Add(uint32(1), uint32(1_000), "a", uint8(0))
	f.Add(uint32(1_000_000_000), uint32(604_800_000), "x.y_z-1", uint8(5))
	f.Add(uint32(5), uint32(1_500), "login", uint8(6))
	rdb := redistest.Client(f)
	f.Fuzz(func(t *testing.T, limit, windowMs uint32, name string, cost uint8) {
		rate := ratelimit.Rate{Limit: int(limit), Window: time.Duration(windowMs) * time.Millisecond}
		l, err := ratelimit.New(rdb, ratelimit.Config{Name: name, Rate: rate, Cost: func(*http.Request) int { return int(cost) }, Timeout: 5 * time.Second})
		if err != nil {
			return // invalid names and rates are refused by New; TestNewRejectsBadConfig covers that
		}
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		l.Middleware(okHandler(200)).ServeHTTP(w, r)
		if rate.Off() {
			if w.Code != 200 || len(w.Header().Values("RateLimit-Policy")) != 0 {
				t.Fatalf("an off limiter answered %d with headers %v", w.Code, w.Header())
			}
			return
		}
		if name == "" {
			name = "default"
		}
		pol, err := parseSFList(w.Header().Get("RateLimit-Policy"))
		if err != nil || len(pol) != 1 || pol[0].value != name || pol[0].params["q"] != int64(limit) {
			t.Fatalf("RateLimit-Policy %q: %+v, %v", w.Header().Get("RateLimit-Policy"), pol, err)
		}
		if wsec := pol[0].params["w"]; wsec*1000 < int64(windowMs) || (wsec-1)*1000 >= int64(windowMs) {
			t.Fatalf("w=%d for a window of %d ms; want it rounded up to seconds", wsec, windowMs)
		}
		if int(cost) > int(limit) {
			if w.Code != 429 || w.Header().Get("Retry-After") != "" {
				t.Fatalf("cost %d > limit %d: %d, Retry-After %q; want 429 without", cost, limit, w.Code, w.Header().Get("Retry-After"))
			}
			return
		}
		rl, err := parseSFList(w.Header().Get("RateLimit"))
		if err != nil || len(rl) != 1 || rl[0].value != name || rl[0].params["r"] < 0 || rl[0].params["r"] > int64(limit) || rl[0].params["t"] < 0 {
			t.Fatalf("RateLimit %q: %+v, %v", w.Header().Get("RateLimit"), rl, err)
		}
	})
}
