package ratelimit_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"time"

	"github.com/theaterscriptpro/tsp/clientip"
	"github.com/theaterscriptpro/tsp/ratelimit"
	"github.com/theaterscriptpro/tsp/redisx"
)

// exampleClient connects as the service does, to REDIS_URL or the local
// Redis, with a key prefix of its own (the limiter's keys expire by
// themselves).
func exampleClient() (*redisx.Client, func()) {
	cfg := redisx.Config{Addrs: []string{"127.0.0.1:6379"}}
	if u := os.Getenv("REDIS_URL"); u != "" {
		var err error
		if cfg, err = redisx.ParseURL(u); err != nil {
			panic(err)
		}
	}
	cfg.KeyPrefix = "example:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	rdb, err := redisx.New(context.Background(), cfg)
	if err != nil {
		panic(err)
	}
	return rdb, rdb.Close
}

// The API limiter of API.md: RATE_LIMIT_API per signed-in user, else per
// client address behind TRUSTED_PROXIES.
func ExampleLimiter_Middleware() {
	rdb, done := exampleClient()
	defer done()

	rate, err := ratelimit.ParseRate("2/1m") // os.Getenv("RATE_LIMIT_API")
	if err != nil {
		fmt.Println("RATE_LIMIT_API:", err)
		return
	}
	proxies, _ := clientip.Parse("10.0.0.0/8") // os.Getenv("TRUSTED_PROXIES")
	ips := clientip.Resolver{Trusted: proxies}
	signedIn := func(r *http.Request) (string, bool) { return "", false } // the session's user id
	api, err := ratelimit.New(rdb, ratelimit.Config{Name: "api", Rate: rate, Key: ratelimit.KeyByUser(signedIn, ips),
		Timeout: time.Second}) // the default 75ms, made generous so the example's output is stable on a busy machine
	if err != nil {
		fmt.Println(err)
		return
	}
	h := api.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for range 3 {
		r := httptest.NewRequest("GET", "/api/scripts", nil)
		r.RemoteAddr = "10.0.0.2:5555"
		r.Header.Set("X-Forwarded-For", "198.51.100.23")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(w.Code, w.Header().Get("RateLimit-Policy"), w.Header().Get("X-RateLimit-Remaining"))
	}
	// Output:
	// 200 "api";q=2;w=60 1
	// 200 "api";q=2;w=60 0
	// 429 "api";q=2;w=60 0
}

// The login limiter of API.md: RATE_LIMIT_LOGIN per client address and
// email, counting failed sign-ins only, with an exact sliding log.
func ExampleLimiter_Allow() {
	rdb, done := exampleClient()
	defer done()

	login, err := ratelimit.New(rdb, ratelimit.Config{Name: "login", Algorithm: ratelimit.SlidingLog,
		Rate: ratelimit.Rate{Limit: 5, Window: time.Minute},
		// Password guessing must not get through while Redis is away, and a
		// sign-in (argon2id) is slow anyway, so Redis may take longer.
		FailurePolicy: ratelimit.FailClosed, Timeout: time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	key := ratelimit.AddrKey(clientip.Peer(httptest.NewRequest("POST", "/api/auth/login", nil))) + "|alice@example.com"
	for attempt := 1; attempt <= 7; attempt++ {
		d, err := login.Allow(ctx, key, 1)
		if err != nil {
			fmt.Println(err)
			return
		}
		if !d.Allowed {
			fmt.Printf("attempt %d refused, retry in about %v\n", attempt, d.RetryAfter.Round(time.Minute))
			continue
		}
		signedIn := attempt == 1
		if signedIn {
			_ = login.Refund(ctx, d) // successes do not count
		}
		fmt.Printf("attempt %d checked\n", attempt)
	}
	// Output:
	// attempt 1 checked
	// attempt 2 checked
	// attempt 3 checked
	// attempt 4 checked
	// attempt 5 checked
	// attempt 6 checked
	// attempt 7 refused, retry in about 1m0s
}

// Leasing: one client hammering one key costs a round trip per lease, not
// per request, while the limit stays shared by every instance.
func ExampleLeaseConfig() {
	rdb, done := exampleClient()
	defer done()

	api, err := ratelimit.New(rdb, ratelimit.Config{Name: "api",
		Rate:      ratelimit.Rate{Limit: 100_000, Window: time.Minute},
		Lease:     ratelimit.LeaseConfig{Enabled: true},
		Instances: 2, // a lease takes at most remaining ÷ (2 × Instances)
		Timeout:   time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	before := rdb.RoundTrips()
	leased := 0
	for range 1000 {
		d, err := api.Allow(ctx, "ip:198.51.100.23", 1)
		if err != nil || !d.Allowed {
			fmt.Println("refused:", d.Source, err)
			return
		}
		if d.Source == ratelimit.SourceLease {
			leased++
		}
	}
	// At shutdown: what the lease did not spend goes back to Redis.
	if err := api.Close(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("spent from leases, at least 900 of 1000:", leased >= 900)
	fmt.Println("round trips, at most 50:", rdb.RoundTrips()-before <= 50)
	// Output:
	// spent from leases, at least 900 of 1000: true
	// round trips, at most 50: true
}
