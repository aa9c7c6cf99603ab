package ratelimit_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/ratelimit"
	"github.com/theaterscriptpro/tsp/redisx"
)

// TestRedisDown stops a throwaway Redis (killed, or paused so connections
// hang) and checks that each failure policy decides within the deadline,
// and that decisions come from Redis again within 1 s of its return.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	// Slack over the deadline for a loaded 2-core machine running -race;
	// an unbounded hang (the failure this guards against) is seconds.
	const slack = 400 * time.Millisecond
	for _, fault := range []string{"kill", "pause"} {
		for _, policy := range []ratelimit.FailurePolicy{ratelimit.FailOpen, ratelimit.FailClosed, ratelimit.LocalFallback} {
			t.Run(fault+"/"+policy.String(), func(t *testing.T) {
				t.Parallel()
				srv := redistest.StartServer(t)
				cfg := redistest.Config(t)
				cfg = redistest.At(cfg, srv.Addr)
				// The breaker lets a probe through 250 ms after it opens, so
				// recovery is bounded by that plus one dial.
				cfg.BreakerOpenFor = 250 * time.Millisecond
				rdb := redistest.Connect(t, cfg)
				l, err := ratelimit.New(rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 4, Window: time.Minute},
					FailurePolicy: policy, Instances: 2, Timeout: timeout})
				if err != nil {
					t.Fatal(err)
				}
				if d := allow(t, l, "warm", 1); d.Source != ratelimit.SourceRedis {
					t.Fatalf("before the fault: %+v; want a Redis decision", d)
				}
				if fault == "kill" {
					srv.Kill()
				} else {
					srv.Pause()
					t.Cleanup(srv.Resume)
				}
				h := l.Middleware(okHandler(200))
				for i := range 8 {
					start := time.Now()
					d := allow(t, l, "k", 1)
					if el := time.Since(start); el > timeout+slack {
						t.Fatalf("decision %d took %v; want within the %v deadline", i, el, timeout)
					}
					switch policy {
					case ratelimit.FailOpen:
						if !d.Allowed || d.Source != ratelimit.SourceFailOpen {
							t.Fatalf("decision %d: %+v; want admitted, fail open", i, d)
						}
					case ratelimit.FailClosed:
						if d.Allowed || d.Source != ratelimit.SourceFailClosed {
							t.Fatalf("decision %d: %+v; want refused, fail closed", i, d)
						}
					case ratelimit.LocalFallback:
						// 4 ÷ 2 instances = 2 per instance.
						if want := i < 2; d.Allowed != want || d.Source != ratelimit.SourceFallback {
							t.Fatalf("decision %d: %+v; want allowed=%v from the fallback", i, d, want)
						}
					}
				}
				w := serve(h, "192.0.2.1:1")
				want := map[ratelimit.FailurePolicy]int{ratelimit.FailOpen: 200, ratelimit.FailClosed: 503, ratelimit.LocalFallback: 200}[policy]
				if w.Code != want {
					t.Fatalf("middleware while Redis is down: %d; want %d", w.Code, want)
				}
				if policy == ratelimit.FailClosed && w.Header().Get("Retry-After") != "1" {
					t.Fatalf("503 Retry-After %q; want 1", w.Header().Get("Retry-After"))
				}
				if got := counterValue(t, l.Collector(), "ratelimit_redis_errors_total"); got < 1 {
					t.Fatalf("redis errors counted %v; want some", got)
				}

				if fault == "kill" {
					srv.Start(t)
				} else {
					srv.Resume()
				}
				back := time.Now()
				for {
					d := allow(t, l, "after", 1)
					if d.Source == ratelimit.SourceRedis {
						if !d.Allowed {
							t.Fatalf("first decision after recovery: %+v; want admitted", d)
						}
						break
					}
					if time.Since(back) > time.Second {
						t.Fatalf("still %v %v after Redis came back; want Redis decisions within 1 s", d.Source, time.Since(back))
					}
					time.Sleep(10 * time.Millisecond)
				}
				t.Logf("normal again %v after Redis came back", time.Since(back).Round(time.Millisecond))
				checkTTLs(t, rdb)
			})
		}
	}
}

// TestFallbackIsBounded checks the in-memory fallback's memory
// bound and refunds with Redis unreachable from the start.
func TestFallbackIsBounded(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	cfg := redistest.Config(t)
	cfg = redistest.At(cfg, srv.Addr)
	srv.Kill()
	rdb, err := redisx.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	l, err := ratelimit.New(rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 1, Window: time.Minute},
		FailurePolicy: ratelimit.LocalFallback, FallbackKeys: 100, SkipSuccessful: true})
	if err != nil {
		t.Fatal(err)
	}
	// Many keys: the first ones are evicted rather than memory growing.
	for i := range 1000 {
		allow(t, l, "k"+string(rune('a'+i%26))+string(rune('a'+i/26)), 1)
	}
	if n := ratelimit.FallbackLen(l); n > 100 || n == 0 {
		t.Fatalf("fallback tracks %d keys; want 1..100", n)
	}
	// Refund under the fallback gives the unit back locally.
	h := l.Middleware(okHandler(http.StatusOK))
	for i := range 3 {
		if w := serve(h, "192.0.2.1:1"); w.Code != 200 {
			t.Fatalf("request %d with SkipSuccessful under the fallback: %d; want 200", i, w.Code)
		}
	}
}
