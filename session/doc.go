// Package session keeps signed-in sessions in Redis — the original guide's
// SessionService (create(userId, email, role), get, update, delete,
// expiration, several sessions per user, deleteUserSessions(userId)) — and
// provides the middleware that signs requests in.
//
//	store, err := session.NewStore(rdb, session.Config{}) // 24h idle, 7 days absolute
//	mgr, err := session.NewManager(store, session.ManagerConfig{})
//	mux.Handle("GET /api/me", mgr.RequireSession(me))       // 401, or 503 if Redis cannot answer
//	mux.Handle("GET /api/scripts", mgr.LoadSession(scripts)) // optional: anonymous if none
//	// in the login handler, once the password checked out:
//	token, s, err := mgr.SignIn(w, r, session.NewSession{UserID: u.ID, Email: u.Email, Role: role})
//	// in a handler behind RequireSession:
//	s, token, ok := session.FromContext(r.Context())
//
// # Tokens
//
// A token is "<userID>.<secret>": the secret is 32 bytes from crypto/rand
// in base64url (43 characters). Redis holds only the SHA-256 of the secret,
// so a dump, a replica or MONITOR gives nobody a usable token, and a
// lookup is by hash, never a comparison of secrets. The user id is public
// (it is in URLs already); it is in the token so that the lookup goes
// straight to the user's Redis Cluster slot with no second lookup. Tokens
// are parsed strictly (length, alphabet, canonical base64url) before any
// Redis call: a malformed one costs nothing and is simply not found. A
// token the server did not issue is never adopted: sessions are made only
// by Create, which mints the token.
//
// # Keys
//
// All keys of one user share the user's hash tag, so every script touches
// one slot (h is the base64url SHA-256 of the token's secret):
//
//	session:{uid}:<h>       string: the session; TTL = its idle expiry
//	sessions:user:{uid}     sorted set of "<id>:<h>" by idle expiry;
//	                        TTL = its latest entry; pruned on every read and write
//	sessions:epoch:{uid}    revocation counter bumped by DeleteAll
//
// A session is one compact string (a numeric header the scripts read, then
// the data as JSON only Go reads), about 500 to 700 bytes of Redis memory
// with its index entry; see scripts.go and the README.
//
// Every session records the epoch it was born in and is dead as soon as
// the epoch moves, so DeleteAll is complete even for a session the index
// lost. A session's public ID (for DELETE /api/sessions/{id}) is random,
// neither the token nor its hash.
//
// # Consistency
//
// Every write is one Lua script, so it is atomic: Update is a
// compare-and-set that writes only into a live, unchanged session; Rotate
// moves the session to the new token's key and swaps the index entry in
// one step. A slow request therefore never brings back a session that was
// deleted, rotated or revoked, and an old token fails the moment Rotate
// returns. Create, Delete, DeleteAll, DeleteByID, List and Rotate cost one
// round trip each.
//
// Lookups (Get, Touch, and so the middleware) read the session and the
// user's epoch through the local tier, rueidis's server-assisted
// client-side cache: when this process holds both and no touch write is
// due, a lookup costs no round trip at all; the first read costs one (two
// GETs in one pipeline), and a lookup whose touch is due, or that the
// local tier cannot decide safely (near expiry, a copy older than a write
// here, the connection silent for longer than redisx.Config.LocalLease), runs the load
// script: one round trip. Update is a lookup plus its compare-and-set.
// Redis pushes the invalidation of a changed key to every instance (well
// within 100ms); the instance that wrote never serves the old copy (see
// local.go).
//
// # Time
//
// Expiry decisions use Redis TIME, read inside the scripts, so instances
// with different clocks agree. The local tier calls a session alive only
// a margin (1s) before its expiry by the app clock and while its key has
// that margin left by its PTTL in Redis (no clock involved), and it never
// writes: so it cannot keep a session past what Redis allows. Config.Now replaces it for tests; the
// scripts then take that time as an argument, and every TTL is relative to
// it. Activity (Touch) moves the idle expiry forward, never past the
// absolute one, and writes only when the last write is older than
// Config.TouchInterval, so most lookups are a read.
//
// # HTTP
//
// Manager reads the tsp_session cookie or an Authorization: Bearer header,
// sets cookies HttpOnly, SameSite=Lax, Path=/ and Secure behind TLS (with
// an optional __Host- prefix), and never treats "Redis cannot answer" as
// anonymous on a route that requires a session: that is 503 within
// ManagerConfig.LookupTimeout. Logs and metrics never contain a token;
// Fingerprint gives a short hash for logs.
//
// # Redis configuration
//
// Sessions must not be evicted at random: run Redis with maxmemory-policy
// noeviction or volatile-ttl. (If the epoch key were evicted, sessions born
// after a revocation would fail closed: signed out, never let in.)
package session
