// Package httpapi is the Theater Script Pro HTTP API: every endpoint of
// API.md on the standard http.ServeMux, wired to the Redis toolkit the way
// the original guide's examples use it.
//
//   - Public reads go through the response cache (package httpcache): the
//     list for 300 s under scripts:list:{params}, one script for 600 s under
//     script:{id}, an author's scripts under scripts:user:{id}. Writes purge
//     the script, every list and the author's list before they answer.
//   - Profiles are cache-aside, user:{id} for an hour with misses remembered
//     (redisx.CacheWith); a user's licences are cache-aside under
//     licenses:user:{id}, dropped when they take a licence.
//   - Successful script reads, cache hits included, are counted in memory
//     and sent to views:script:{id} (24 h TTL) once a second in one
//     pipeline, so a read costs no round trip of its own.
//   - Sessions (package session): cookie tsp_session or a Bearer token;
//     signed-in routes answer 401 without a live session and 503 when Redis
//     cannot be asked. Limits (package ratelimit): every /api request per
//     user else per client IP, sign-in per IP + email.
//   - Every error is problem+json, from one table of domain error codes;
//     every response has an X-Request-ID; every request makes one JSON log
//     line and a latency observation by route pattern.
//
// When Redis is down, public reads are served from the database with
// X-Cache: BYPASS, registration works, signed-in routes answer 503 and
// /readyz says which dependency is down; all is normal again when Redis
// returns.
//
//	api, err := httpapi.New(httpapi.Deps{
//		Redis: rdb, Users: st, Scripts: st, Licenses: st, Database: st,
//		Logger: logger, Metrics: registry,
//		APIRate: cfg.RateLimitAPI, LoginRate: cfg.RateLimitLogin,
//	})
//	if err != nil { ... }
//	defer api.Close(ctx)
//	srv := &http.Server{Addr: ":8080", Handler: api, ReadHeaderTimeout: 5 * time.Second}
package httpapi
