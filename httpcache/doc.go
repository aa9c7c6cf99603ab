// Package httpcache is the HTTP response cache of Theater Script Pro:
// per-route middleware that stores whole responses in Redis (through
// redisx), and invalidation by tags that never scans the keyspace nor
// walks a tag's entries: a purge bumps each tag's epoch (O(1) however many
// entries carry it), and a lookup refuses a record stored under an older
// epoch than its namespace's (every tag's, on routes with Vary, PerUser or
// Tags). It is
// the original guide's cache({ttl, keyGenerator}) and
// invalidateCache(['scripts:*', 'script:*']), made safe by default.
//
//	hc, err := httpcache.New(rdb, httpcache.Config{CredentialCookies: []string{"tsp_session"}})
//	if err != nil { ... }
//	defer hc.Close()
//	reg.MustRegister(hc.Collector())
//
//	mux.Handle("GET /api/scripts/{id}", hc.Middleware(httpcache.Route{
//		TTL: 10 * time.Minute, Key: httpcache.Resource("script", "id"), Public: true,
//	})(getScript))
//	mux.Handle("PUT /api/scripts/{id}",
//		hc.InvalidatePatternsMiddleware("script:{id}", "scripts:*")(updateScript))
//
// A hit replays the stored status, headers and body byte for byte, with
// X-Cache, Cache-Status (RFC 9211), Age and a strong ETag; If-None-Match
// gets 304. Entries are read through the local tier, rueidis's
// server-assisted client-side cache (redisx DoMultiCache; its memory is
// redisx Config.LocalCacheBytes per connection, 32 MiB by default): a hit
// on an entry this process holds costs no Redis round trip, the first
// read of an entry (or a re-read after Redis invalidated it) one GET. A
// miss runs the handler once per key across all instances while the
// others wait for its entry.
//
// The local tier keeps the contract of API.md (redisx's local tier): a local copy
// lives no longer than the route's TTL nor the key's PTTL, and the
// record's age is checked besides; Redis pushes an invalidation when the
// key changes, so other instances stop serving a purged entry within
// milliseconds (tested at 100ms); the purging instance refuses its own
// copies before the purge returns (tag epochs, and marks for UNLINKed
// keys, redisx.Client.MarkWritten); rueidis drops a connection's copies
// when it is lost, and redisx serves copies only while the connection
// holding them answered within redisx.Config.LocalLease (100ms), so a
// stalled Redis or a hung connection stops local hits too.
//
// Safe defaults: only 200 responses are stored (Route.Statuses adds
// others); never one that sets a cookie or says private, no-store or
// no-cache, nor one answering a request with credentials (unless the route
// is Public or PerUser). Unkeyed inputs cannot change what is stored: the
// handler of a storable request does not see query parameters outside the
// key, X-Forwarded-Host and the like (UnkeyedHeaders), or conditional
// headers. Client Cache-Control is ignored unless the route allows it.
//
// When Redis is down requests pass through to the handler within
// Config.LookupTimeout with X-Cache: BYPASS; the cache never answers with
// an error of its own.
package httpcache
