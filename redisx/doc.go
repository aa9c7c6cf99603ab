// Package redisx is the Redis service of Theater Script Pro: one client for a
// standalone server, Sentinel or Cluster (on rueidis), the key conventions of
// the original setup guide, JSON values with TTLs, hashes, sets, counters
// whose TTL is set in the same atomic step, a stampede-proof cache-aside, Lua
// scripts, health checks and Prometheus collectors.
//
// Redis trouble is reported, never hidden: every call has a deadline, a
// circuit breaker turns a dead Redis into a fast ErrUnavailable, and the
// client reconnects by itself with exponential backoff and full jitter.
// New never fails because Redis is down; only a bad Config is an error.
//
//	rdb, err := redisx.New(ctx, redisx.Config{Addrs: []string{"localhost:6379"}})
//	if err != nil { ... }
//	defer rdb.Close()
//	user, err := redisx.Cache(ctx, rdb, rdb.Keys().User(id), time.Hour,
//		func(ctx context.Context) (User, error) { return db.UserByID(ctx, id) })
package redisx
