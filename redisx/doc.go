// Package redisx is the Redis service of Theater Script Pro: one client for a
// standalone server, Sentinel or Cluster (on rueidis), the key conventions of
// the original setup guide, JSON values with TTLs, hashes, sets, counters
// whose TTL is set in the same atomic step, a stampede-proof cache-aside, Lua
// scripts, health checks and Prometheus collectors.
//
// Redis trouble is reported, never hidden: every call has a deadline, a
// circuit breaker (sony/gobreaker, with half-open probing; one per node,
// following failovers) turns a dead Redis into an ErrUnavailable that
// costs microseconds, and the client reconnects by itself. New never fails
// because Redis is down; only a bad Config is an error. While Redis is
// down, Cache answers from its loader (coalesced, at most 16 loads at a
// time). Only idempotent commands are ever retried, so a counter is never
// incremented twice.
//
// Every call is one round trip (DoMulti: one pipeline), counted by
// RoundTrips and shown to Config.CommandHook; Collector exposes the
// Prometheus series listed on it.
//
//	rdb, err := redisx.New(ctx, redisx.Config{Addrs: []string{"localhost:6379"}})
//	if err != nil { ... }
//	defer rdb.Close()
//	user, err := redisx.Cache(ctx, rdb, rdb.Keys().Tagged("user", id), time.Hour,
//		func(ctx context.Context) (User, error) { return db.UserByID(ctx, id) })
package redisx
