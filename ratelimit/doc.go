// Package ratelimit limits requests against quotas that every instance of
// the service shares through Redis: the original guide's
// redisRateLimit({windowMs, max, keyGenerator}) with a sliding window that
// never admits more than max in any window of length windowMs, per-user or
// per-IP keys, and skip rules.
//
// Each decision is one Lua script in one round trip (EVALSHA, EVAL on
// NOSCRIPT), timed by Redis TIME so instances with skewed clocks agree, and
// decides every policy of a limiter (say per minute and per day) atomically.
// Three algorithms: SlidingWindow (default; a small hash of time buckets per
// key), SlidingLog (exact, for small limits such as sign-in) and GCRA (a
// smooth rate with a burst). Keys are ratelimit:{identifier}:limiter:policy,
// the identifier being the Redis Cluster hash tag, and every key has a TTL
// at every step.
//
// A flood from one client costs no round trips: a key Redis refused is
// refused in process until its retry time. When Redis is down the limiter
// fails open, closed, or to an in-memory limit at max ÷ instances, within
// a short deadline.
//
// Round trips per decision: one without leasing. With Config.Lease
// (SlidingWindow only), a key this instance sees at HotRate or more
// reserves a batch of the shared quota in that same one call and spends it
// in process, so a hot key costs about one round trip per MaxBatch
// decisions (per lease), and a cold key still exactly one per decision. A
// leased unit is spent only while Redis's clock is provably inside the
// time bucket it was charged to, which keeps "never more than max in any
// window" across instances; what a lease does not spend is given back to
// that bucket. Call Close at shutdown to give back what is held.
//
//	api, err := ratelimit.New(rdb, ratelimit.Config{
//		Name: "api",
//		Rate: rate, // ratelimit.ParseRate(os.Getenv("RATE_LIMIT_API"))
//		Key:  ratelimit.KeyByUser(signedInUser, clientip.Resolver{Trusted: proxies}),
//		// One client hammering one key costs a round trip per lease, not
//		// per request.
//		Lease:     ratelimit.LeaseConfig{Enabled: true},
//		Instances: instances, // leases take at most remaining ÷ (2 × Instances)
//	})
//	if err != nil { ... }
//	defer api.Close(ctx) // gives back unspent leases
//	mux.Handle("/api/", api.Middleware(apiHandler))
package ratelimit
