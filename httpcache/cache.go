package httpcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/theaterscriptpro/tsp/redisx"
)

// Cache is the response cache: per-route middleware, invalidation, and
// the metrics of both. It is safe for concurrent use; make one per process
// with New and share it. Several processes sharing one Redis (and key
// prefix) share the entries.
type Cache struct {
	rdb  *redisx.Client
	keys redisx.Keys
	cfg  Config
	m    *metrics

	strip       map[string]bool // request headers removed before a storable request
	unstored    map[string]bool // response headers never stored
	credCookies map[string]bool // nil: every cookie is a credential

	flights flightGroup
	purges  purgeLog
	retry   retryQueue

	mu         sync.Mutex
	namespaces map[string]bool // known to InvalidatePatterns
	lifetime   time.Duration   // the longest entry lifetime of any route

	refreshes chan struct{} // bounds background refreshes
	bg        sync.WaitGroup
	closeOnce sync.Once
	closed    chan struct{}
}

// UnkeyedHeaders are request headers that frameworks and proxies trust to
// rewrite the URL, host, scheme or method. A request whose response may be
// stored reaches the handler without them (unless its route keys on one
// with Vary), so nobody can poison an entry through them.
var UnkeyedHeaders = []string{
	"Forwarded", "Front-End-Https", "X-Forwarded-Host", "X-Forwarded-Proto",
	"X-Forwarded-Scheme", "X-Forwarded-Port", "X-Forwarded-Prefix",
	"X-Forwarded-Server", "X-Forwarded-Ssl", "X-Host", "X-Original-Host",
	"X-Original-Url", "X-Rewrite-Url", "X-Http-Method-Override",
	"X-Http-Method", "X-Method-Override", "X-Url-Scheme",
}

// conditionalHeaders are evaluated by the cache itself against the stored
// entry; a handler that saw them could answer 304 or 206, which cannot be
// stored for everyone.
var conditionalHeaders = []string{
	"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range",
}

// neverStored: hop-by-hop fields (RFC 9110 7.6.1), cookies, fields that
// describe one response rather than the representation, and the fields
// this package sets itself on every replay.
var neverStored = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Set-Cookie", "Set-Cookie2", "Date", "Age", "Etag", "X-Cache", "Cache-Status",
	"X-Request-Id", "Ratelimit", "Ratelimit-Policy", "X-Ratelimit-Limit",
	"X-Ratelimit-Remaining", "X-Ratelimit-Reset", "Retry-After",
}

// New returns a Cache storing entries through rdb. It never talks to Redis:
// a Cache made while Redis is down works as soon as Redis answers.
func New(rdb *redisx.Client, cfg Config) (*Cache, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redisx.Client", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Cache{
		rdb:        rdb,
		keys:       rdb.Keys(),
		cfg:        cfg,
		m:          newMetrics(),
		strip:      canonicalSet(UnkeyedHeaders, cfg.StripHeaders),
		unstored:   canonicalSet(neverStored, cfg.UnstoredHeaders),
		namespaces: map[string]bool{},
		refreshes:  make(chan struct{}, cfg.RefreshWorkers),
		closed:     make(chan struct{}),
	}
	if cfg.CredentialCookies != nil {
		c.credCookies = map[string]bool{}
		for _, n := range cfg.CredentialCookies {
			c.credCookies[n] = true
		}
	}
	for _, ns := range cfg.Namespaces {
		c.namespaces[ns] = true
	}
	c.lifetime = defaultTTL
	c.retry.init()
	c.bg.Add(1)
	go c.retryLoop()
	return c, nil
}

// Close stops background refreshes and purge retries, waiting for the ones
// running. It does not close the redisx.Client.
func (c *Cache) Close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.bg.Wait()
	})
}

func canonicalSet(lists ...[]string) map[string]bool {
	m := map[string]bool{}
	for _, l := range lists {
		for _, h := range l {
			m[http.CanonicalHeaderKey(h)] = true
		}
	}
	return m
}

// route is a Route with its defaults applied and its metrics bound.
type route struct {
	c            *Cache
	name         string
	key          Key
	ns           string
	ttl          time.Duration
	swr, sie     time.Duration
	lifetime     time.Duration // in Redis: TTL plus the longest stale window
	tags         func(*http.Request) []string
	cond         func(*http.Request) bool
	maxBody      int
	vary         []string // canonical, sorted
	varySet      map[string]bool
	public       bool
	perUser      func(*http.Request) (string, bool)
	allowNoCache bool
	statuses     map[int]bool
	m            routeMetrics

	// The epochs a lookup checks (see lookupTags): for a route with one
	// entry per resource and no route tags, only the namespace's, made
	// once here.
	plain     bool
	nsTags    []string // {NamespaceTag(ns)}
	nsEpochKs []string // {its epoch key}
}

// Middleware returns the caching middleware for one route, like the
// original guide's cache({ttl, keyGenerator}). It caches GET (HEAD is
// served from GET entries) and passes other methods through untouched.
//
// It panics if route is invalid (see Route.Validate), as http.ServeMux
// panics on a bad pattern: both are wiring mistakes found at start-up.
func (c *Cache) Middleware(route Route) func(http.Handler) http.Handler {
	rt, err := c.newRoute(route)
	if err != nil {
		panic(err)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rt.serve(w, r, next)
		})
	}
}

func (c *Cache) newRoute(in Route) (*route, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	rt := &route{
		c: c, key: in.Key.orDefault(), ttl: in.TTL, swr: in.StaleWhileRevalidate, sie: in.StaleIfError,
		tags: in.Tags, cond: in.Condition, maxBody: in.MaxBodyBytes, public: in.Public,
		perUser: in.PerUser, allowNoCache: in.AllowClientNoCache, statuses: map[int]bool{200: true},
		varySet: map[string]bool{},
	}
	rt.ns = rt.key.Namespace()
	rt.name = in.Name
	if rt.name == "" {
		rt.name = rt.ns
	}
	if rt.ttl == 0 {
		rt.ttl = defaultTTL
	}
	if rt.maxBody == 0 {
		rt.maxBody = defaultMaxBody
	}
	rt.lifetime = rt.ttl + max(rt.swr, rt.sie)
	for _, s := range in.Statuses {
		rt.statuses[s] = true
	}
	for _, h := range in.Vary {
		rt.varySet[http.CanonicalHeaderKey(h)] = true
	}
	for h := range rt.varySet {
		rt.vary = append(rt.vary, h)
	}
	slices.Sort(rt.vary)
	rt.m = c.m.route(rt.name)
	rt.plain = len(rt.vary) == 0 && rt.perUser == nil && rt.tags == nil
	rt.nsTags = []string{NamespaceTag(rt.ns)}
	rt.nsEpochKs = []string{c.tagEpochKey(rt.nsTags[0])}
	c.mu.Lock()
	c.namespaces[rt.ns] = true
	c.lifetime = max(c.lifetime, rt.lifetime)
	c.mu.Unlock()
	return rt, nil
}

// entryKey names one entry and the keys derived from it. The lease shares
// the entry's hash tag, so one Lua script may touch both in Redis Cluster.
type entryKey struct {
	entry    string
	id       string
	suffixes []string
}

func (k entryKey) lease(keys redisx.Keys, ns string) string {
	// Entry suffixes start with 'v' or 'u', so "lease" names no entry.
	return keys.Tagged(ns, k.id, append(slices.Clip(k.suffixes), "lease")...)
}

// keyFor returns the request's entry key: the Key's id in its namespace,
// then the Vary headers' values and the user, when the route keys on them.
func (rt *route) keyFor(r *http.Request) (entryKey, bool) {
	id, ok := rt.key.id(r)
	if !ok || rt.ns == "" {
		return entryKey{}, false
	}
	k := entryKey{id: id}
	if len(rt.vary) > 0 {
		k.suffixes = append(k.suffixes, "v"+varyPart(r.Header, rt.vary))
	}
	if rt.perUser != nil {
		u, ok := rt.perUser(r)
		if !ok {
			return entryKey{}, false
		}
		k.suffixes = append(k.suffixes, "u"+u)
	}
	k.entry = rt.c.keys.Tagged(rt.ns, id, k.suffixes...)
	return k, true
}

// varyPart encodes the keyed headers' values injectively: a missing header
// differs from an empty one, and escaping keeps values from running into
// each other.
func varyPart(h http.Header, names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		vals, ok := h[n]
		if !ok {
			b.WriteByte('-')
			continue
		}
		b.WriteByte('=')
		for j, v := range vals {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(url.QueryEscape(v))
		}
	}
	return b.String()
}

// serve is the whole request path. A hit held in the local tier costs no
// Redis round trip, any other hit one GET of the entry.
func (rt *route) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		next.ServeHTTP(w, r)
		return
	}
	c := rt.c
	if rt.cond != nil && !rt.cond(r) {
		rt.bypass(w, r, next, "condition")
		return
	}
	if !rt.public && rt.perUser == nil && c.hasCredentials(r) {
		rt.bypass(w, r, next, "credentials")
		return
	}
	k, ok := rt.keyFor(r)
	if !ok {
		rt.bypass(w, r, next, "no-key")
		return
	}
	revalidate := false
	if rt.allowNoCache {
		var noStore bool
		if revalidate, noStore = clientDirectives(r.Header); noStore {
			rt.bypass(w, r, next, "client-no-store")
			return
		}
	}
	var stale *record
	if !revalidate {
		rec, found, err := c.lookup(r.Context(), rt, k.entry, r, k)
		if err != nil {
			if r.Context().Err() != nil {
				return // the client left; nobody to answer
			}
			// Redis is down or slow: answer without it, but still once per
			// key in this process, or a sick Redis becomes a stampede on
			// the database.
			rt.m.bypass.Inc()
			rt.miss(w, r, next, k, nil, false, true)
			return
		}
		if found && !c.purges.stale(&rec) {
			age := c.nowMs() - rec.storedMs
			switch {
			case age < rec.ttlMs:
				rt.m.hit.Inc()
				rt.writeRecord(w, r, &rec, outcome{xcache: "HIT", hit: true})
				return
			case age < rec.ttlMs+rt.swr.Milliseconds():
				rt.m.stale.Inc()
				rt.refresh(r, next, k)
				rt.writeRecord(w, r, &rec, outcome{xcache: "STALE", hit: true, detail: "stale-while-revalidate"})
				return
			case age < rec.ttlMs+rt.sie.Milliseconds():
				stale = &rec
			}
		}
	}
	if r.Method == http.MethodHead {
		// A HEAD response has no body to store; GET fills the entry.
		rt.m.miss.Inc()
		setCacheHeaders(w.Header(), c.cfg.Name, "MISS", "fwd=method")
		next.ServeHTTP(w, r)
		return
	}
	rt.m.miss.Inc()
	rt.miss(w, r, next, k, stale, revalidate, false)
}

func (rt *route) bypass(w http.ResponseWriter, r *http.Request, next http.Handler, why string) {
	rt.m.bypass.Inc()
	setCacheHeaders(w.Header(), rt.c.cfg.Name, "BYPASS", "fwd=bypass; detail="+why)
	next.ServeHTTP(w, r)
}

func setCacheHeaders(h http.Header, name, xcache, status string) {
	h["X-Cache"] = []string{xcache}
	h["Cache-Status"] = []string{name + "; " + status}
}

func (c *Cache) nowMs() int64 { return c.cfg.Now().UnixMilli() }

// lookupTags returns the tags whose epochs a lookup of k checks, their
// epoch keys, and whether every tag of the record must be among them. An
// entry of a plain route (no Vary, no PerUser, no route Tags) is the only
// entry of its resource, and a resource purge UNLINKs it besides bumping
// the epoch (invalidate.go), so only the namespace's epoch is read: one
// key, made once. Other routes read every tag's.
func (rt *route) lookupTags(r *http.Request, k entryKey) (tags, keys []string, all bool) {
	if rt.plain {
		return rt.nsTags, rt.nsEpochKs, false
	}
	tags = rt.tagsFor(r, k)
	keys = make([]string, len(tags))
	for i, t := range tags {
		keys[i] = rt.c.tagEpochKey(t)
	}
	return tags, keys, true
}

// lookup reads an entry, and the purge epochs of its tags (lookupTags),
// through redisx's local tier (DoCache): copies held here answer with no
// round trip and no timer, else one GET each. redisx decides whether a
// copy may be served (the connection's lease, this process's own
// UNLINKs). The epochs change only when a purge runs, so their copies are
// nearly always local: a lookup that reads the entry from Redis still
// costs one round trip. The local copies live at most the route's TTL
// (and never past the key's PTTL: rueidis caps it), and the record's own
// age is checked by the caller besides. A record stored under an older
// epoch than one just read was purged: it is reported as not found.
func (c *Cache) lookup(ctx context.Context, rt *route, key string, r *http.Request, k entryKey) (record, bool, error) {
	tags, epochKeys, all := rt.lookupTags(r, k)
	deadline := time.Now().Add(c.cfg.LookupTimeout)
	var one [4]rueidis.RedisResult
	res := one[:0]
	if 1+len(epochKeys) > len(one) {
		res = make([]rueidis.RedisResult, 0, 1+len(epochKeys))
	}
	res = append(res, c.rdb.DoCacheBefore(ctx, deadline, c.rdb.B().Get().Key(key).Cache(), rt.ttl))
	for _, ek := range epochKeys {
		res = append(res, c.rdb.DoCacheBefore(ctx, deadline, c.rdb.B().Get().Key(ek).Cache(), rt.ttl))
	}
	if res[0].IsCacheHit() && redisx.IsNil(res[0].Error()) {
		// A miss remembered locally: it is about to cost round trips
		// anyway, and an entry this process just stored must not be
		// missed while Redis's invalidation of the nil is on its way. Ask
		// Redis itself, for the epochs too, in one pipeline.
		plain := make([]rueidis.Completed, 0, 1+len(epochKeys))
		plain = append(plain, c.rdb.B().Get().Key(key).Build())
		for _, ek := range epochKeys {
			plain = append(plain, c.rdb.B().Get().Key(ek).Build())
		}
		lctx, cancel := context.WithDeadline(ctx, deadline)
		res = c.rdb.DoMulti(lctx, plain...)
		cancel()
	}
	var curBuf [4]tagEpoch
	cur, err := readEpochsInto(curBuf[:0], tags, res[1:])
	entryOK := res[0].Error() == nil || redisx.IsNil(res[0].Error())
	if err != nil && entryOK && errors.Is(err, redisx.ErrUnavailable) {
		// The epochs live on another server than the entry (a Cluster
		// master), and that one is down. Purges of these tags cannot run
		// either (and this process's own failed ones are pending in
		// purgeLog), so one master's failure must not take every entry of
		// the namespace with it: the entry is judged without them. What is
		// lost is a purge that reached the epoch's master just before it
		// died, as a failover loses any write not yet replicated.
		c.m.lookupErrors.Inc()
		cur, err, all = nil, nil, false
	}
	if err != nil {
		c.m.lookupErrors.Inc()
		return record{}, false, err
	}
	s, err := res[0].ToString()
	if redisx.IsNil(err) {
		return record{}, false, nil
	}
	if err != nil {
		c.m.lookupErrors.Inc()
		return record{}, false, err
	}
	rec, ok := decodeRecord(s)
	if !ok {
		// Corrupt, truncated or another version: a miss; the next store
		// overwrites it.
		c.m.corrupt.Inc()
		return record{}, false, nil
	}
	if epochsMoved(&rec, cur, all) {
		return record{}, false, nil // purged (invalidate.go)
	}
	return rec, true, nil
}

func (c *Cache) hasCredentials(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" || r.Header.Get("Proxy-Authorization") != "" {
		return true
	}
	if len(r.Header["Cookie"]) == 0 {
		return false
	}
	if c.credCookies == nil {
		return true
	}
	for _, ck := range r.Cookies() {
		if c.credCookies[ck.Name] {
			return true
		}
	}
	return false
}

// clientDirectives reads the request's Cache-Control (or Pragma):
// revalidate for no-cache or max-age=0, noStore for no-store.
func clientDirectives(h http.Header) (revalidate, noStore bool) {
	cc := h.Values("Cache-Control")
	if len(cc) == 0 {
		for _, p := range h.Values("Pragma") {
			if slices.Contains(splitList(p), "no-cache") {
				return true, false
			}
		}
		return false, false
	}
	for _, v := range cc {
		for _, d := range splitList(v) {
			name, arg, _ := strings.Cut(strings.ToLower(d), "=")
			switch {
			case name == "no-store":
				noStore = true
			case name == "no-cache", name == "max-age" && strings.Trim(arg, `"`) == "0":
				revalidate = true
			}
		}
	}
	return revalidate, noStore
}

func splitList(v string) []string {
	parts := strings.Split(v, ",")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// miss runs the handler once per key in this process: the first request
// (the leader) runs it on its own request; the others wait and get the
// stored response, or run the handler themselves when it was not storable.
// With noRedis (the lookup failed) nothing is stored, but waiters still
// share the leader's response when it is storable.
func (rt *route) miss(w http.ResponseWriter, r *http.Request, next http.Handler, k entryKey, stale *record, revalidate, noRedis bool) {
	call, leader := rt.c.flights.join(k.entry)
	if !leader {
		rt.m.coalesced.Inc()
		select {
		case <-call.done:
		case <-r.Context().Done():
			return
		}
		if call.rec != nil {
			o := outcome{xcache: "HIT", hit: true, collapsed: true}
			if call.bypass {
				o = outcome{xcache: "BYPASS", collapsed: true, detail: "redis-unavailable"}
			}
			rt.writeRecord(w, r, call.rec, o)
			return
		}
		// Not storable (private, an error, too big...): never hand one
		// request's such response to another.
		setCacheHeaders(w.Header(), rt.c.cfg.Name, "MISS", "fwd=uri-miss; detail=not-storable")
		next.ServeHTTP(w, rt.handlerRequest(r))
		return
	}
	defer rt.c.flights.finish(k.entry, call)
	rt.lead(w, r, next, k, stale, revalidate, noRedis, call)
}

// lead runs the handler for a missed key and stores its response. Across
// instances it first takes the key's lease; while another instance holds
// it, it waits for that instance's entry.
func (rt *route) lead(w http.ResponseWriter, r *http.Request, next http.Handler, k entryKey, stale *record, force, noRedis bool, call *flightCall) {
	c := rt.c
	var lease leaseResult
	bypassed := "redis-unavailable"
	if !noRedis {
		var err error
		lease, err = c.acquire(r.Context(), rt, k, rt.tagsFor(r, k), force || stale != nil)
		switch {
		case err != nil && r.Context().Err() != nil:
			return
		case errors.Is(err, redisx.ErrOutOfMemory):
			// Redis is full: it refused the lease, and would refuse the
			// store. Answer without it, and say why.
			c.m.storeOOM.Inc()
			rt.m.bypass.Inc()
			noRedis, bypassed = true, "redis-full"
		case err != nil:
			// Redis failed between the lookup and now: answer without it.
			rt.m.bypass.Inc()
			noRedis = true
		case lease.rec != nil:
			// Another instance stored it while we waited for its lease.
			call.rec = lease.rec
			rt.writeRecord(w, r, lease.rec, outcome{xcache: "HIT", hit: true, collapsed: true})
			return
		}
	}
	released := false
	release := func() {
		if !released && lease.token != "" {
			released = true
			c.releaseLease(r.Context(), rt, k, lease.token)
		}
	}
	defer release() // also when the handler panics

	xcache, fwd := "MISS", "fwd=uri-miss"
	if noRedis {
		xcache, fwd = "BYPASS", "fwd=bypass"
	}
	buf := newRecorder(w, rt.maxBody, func(h http.Header) {
		setCacheHeaders(h, c.cfg.Name, xcache, fwd+"; detail=streamed")
	})
	next.ServeHTTP(buf, rt.handlerRequest(r))
	if buf.streamed {
		rt.m.notStored("streamed")
		return
	}
	if stale != nil && buf.statusOr200() >= 500 {
		// stale-if-error: the stale entry is a better answer than the error.
		rt.m.stale.Inc()
		rt.writeRecord(w, r, stale, outcome{xcache: "STALE", hit: true, fwdStale: buf.statusOr200(), detail: "stale-if-error"})
		return
	}
	rec, enc, reason := rt.build(buf, lease.epochs)
	if reason != "" {
		rt.m.notStored(reason)
		buf.writeTo(w, xcache, c.cfg.Name, fwd+"; detail=not-stored-"+reason)
		return
	}
	if noRedis {
		call.rec, call.bypass = &rec, true
		rt.writeRecord(w, r, &rec, outcome{xcache: "BYPASS", detail: bypassed})
		return
	}
	released = true // the store script releases the lease
	stored := c.store(r.Context(), rt, k, enc, lease)
	if stored {
		rt.m.stores.Inc()
		call.rec = &rec
	}
	rt.writeRecord(w, r, &rec, outcome{xcache: "MISS", stored: stored, revalidated: force && stale == nil})
}

// tagsFor returns the entry's tags: its namespace, its resource, and the
// route's own.
func (rt *route) tagsFor(r *http.Request, k entryKey) []string {
	tags := []string{NamespaceTag(rt.ns), resourceTagEscaped(rt.ns, redisx.EscapeKeyPart(k.id))}
	if rt.tags != nil {
		for _, t := range rt.tags(r) {
			if t != "" && !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
	}
	return tags
}

// handlerRequest is the request the handler sees when its response may be
// stored: without the unkeyed headers and query parameters that could
// change the response without changing the key, and without conditional
// headers (the cache answers those from the entry).
func (rt *route) handlerRequest(r *http.Request) *http.Request {
	r2 := r.WithContext(r.Context()) // a shallow copy that keeps path values
	h := r.Header.Clone()
	for name := range rt.c.strip {
		if !rt.varySet[name] {
			delete(h, name)
		}
	}
	for _, name := range conditionalHeaders {
		delete(h, name)
	}
	r2.Header = h
	if q, changed := rt.key.handlerQuery(r.URL.RawQuery); changed {
		u := *r.URL
		u.RawQuery = q
		u.ForceQuery = false
		r2.URL = &u
		r2.RequestURI = u.RequestURI()
		r2.Form, r2.PostForm = nil, nil
	}
	return r2
}

// build decides whether the handler's response may be stored and, if so,
// encodes it. reason names the rule that refused it.
func (rt *route) build(buf *recorder, epochs []tagEpoch) (rec record, enc []byte, reason string) {
	status := buf.statusOr200()
	h := buf.header
	if !rt.statuses[status] {
		return rec, nil, "status"
	}
	if len(h["Set-Cookie"]) > 0 || len(h["Set-Cookie2"]) > 0 {
		return rec, nil, "set-cookie"
	}
	for _, v := range h["Cache-Control"] {
		for _, d := range splitList(v) {
			name, _, _ := strings.Cut(strings.ToLower(d), "=")
			switch name {
			case "no-store", "no-cache":
				return rec, nil, name
			case "private":
				if rt.perUser == nil {
					return rec, nil, name
				}
			}
		}
	}
	have := map[string]bool{}
	for _, v := range h["Vary"] {
		for _, f := range splitList(v) {
			cf := http.CanonicalHeaderKey(f)
			if f == "*" || !rt.varySet[cf] {
				// The response depends on a header the key ignores.
				return rec, nil, "vary"
			}
			have[cf] = true
		}
	}
	for _, n := range rt.vary {
		if !have[n] {
			h.Add("Vary", n)
		}
	}
	etag := h.Get("Etag")
	if !validETag(etag) {
		etag = computeETag(h.Get("Content-Type"), h.Get("Content-Encoding"), buf.body.Bytes())
	}
	fields, ok := storedHeaders(h, rt.c.unstored)
	if !ok {
		return rec, nil, "header"
	}
	if len(epochs) > maxTags {
		return rec, nil, "tags"
	}
	for _, t := range epochs {
		if len(t.tag) > maxTagLen {
			return rec, nil, "tags"
		}
	}
	enc = encodeRecord(status, rt.c.nowMs(), rt.ttl.Milliseconds(), etag, epochs, fields, buf.body.Bytes())
	rec, ok = decodeRecord(string(enc))
	if !ok {
		return rec, nil, "encode"
	}
	return rec, enc, ""
}

// outcome says how a record is being served, for X-Cache and Cache-Status.
type outcome struct {
	xcache      string
	hit         bool // served from an entry: send Age
	collapsed   bool
	stored      bool
	revalidated bool // the client's no-cache made us go to the handler
	fwdStale    int  // stale-if-error: the handler's status
	detail      string
}

// writeRecord replays a record: its status, headers and body byte for
// byte, with Age, ETag, X-Cache and Cache-Status, or 304 Not Modified when
// If-None-Match matches.
func (rt *route) writeRecord(w http.ResponseWriter, r *http.Request, rec *record, o outcome) {
	c := rt.c
	ageMs := max(c.nowMs()-rec.storedMs, 0)
	notModified := rec.status/100 == 2 && len(r.Header["If-None-Match"]) > 0 && noneMatch(r.Header["If-None-Match"], rec.etag)
	h := w.Header()
	// One backing array for every value this response sets.
	vals := make([]string, rec.nHeaders+5)
	i, start, prev := 0, 0, ""
	for it := rec.headerIter(); it.next(); {
		if notModified && !keptOn304(it.name) {
			continue
		}
		if it.name != prev {
			if prev != "" {
				h[prev] = vals[start:i:i]
			}
			prev, start = it.name, i
		}
		vals[i] = it.value
		i++
	}
	if prev != "" {
		h[prev] = vals[start:i:i]
	}
	set := func(name, v string) {
		vals[i] = v
		h[name] = vals[i : i+1 : i+1]
		i++
	}
	set("Etag", rec.etag)
	if o.hit {
		set("Age", strconv.FormatInt(ageMs/1000, 10))
	}
	set("X-Cache", o.xcache)
	set("Cache-Status", rt.cacheStatus(rec, ageMs, o))
	if notModified {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(rec.status)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, rec.body)
	}
}

// cacheStatus builds the RFC 9211 Cache-Status value, in a buffer on the
// stack: one allocation, the string.
func (rt *route) cacheStatus(rec *record, ageMs int64, o outcome) string {
	ttl := (rec.ttlMs - ageMs) / 1000
	if rec.ttlMs-ageMs < 0 {
		ttl = (rec.ttlMs - ageMs - 999) / 1000 // stale: round away from zero
	}
	var buf [128]byte
	b := append(buf[:0], rt.c.cfg.Name...)
	switch {
	case o.fwdStale != 0:
		b = append(b, "; fwd=stale; fwd-status="...)
		b = strconv.AppendInt(b, int64(o.fwdStale), 10)
	case o.collapsed && o.xcache == "BYPASS":
		b = append(b, "; fwd=bypass; collapsed"...)
	case o.collapsed:
		b = append(b, "; fwd=uri-miss; collapsed"...)
	case o.xcache == "BYPASS":
		b = append(b, "; fwd=bypass"...)
	case o.hit:
		b = append(b, "; hit"...)
	case o.revalidated:
		b = append(b, "; fwd=request"...)
	default:
		b = append(b, "; fwd=uri-miss"...)
	}
	if o.stored {
		b = append(b, "; stored"...)
	}
	b = append(b, "; ttl="...)
	b = strconv.AppendInt(b, ttl, 10)
	if o.detail != "" {
		b = append(b, "; detail="...)
		b = append(b, o.detail...)
	}
	return string(b)
}

// keptOn304 lists what RFC 9110 15.4.5 requires (or allows) on a 304: the
// fields a 200 would carry that guide caches, not representation metadata.
func keptOn304(name string) bool {
	switch name {
	case "Cache-Control", "Content-Location", "Expires", "Vary", "Last-Modified":
		return true
	}
	return false
}

// refresh starts one background refresh of a stale entry, detached from
// the request, unless one is running for the key here or the pool is full.
func (rt *route) refresh(r *http.Request, next http.Handler, k entryKey) {
	c := rt.c
	select {
	case <-c.closed:
		return
	case c.refreshes <- struct{}{}:
	default:
		return // pool full: serve stale a little longer
	}
	call, leader := c.flights.join(k.entry)
	if !leader {
		<-c.refreshes
		return
	}
	rr := r.Clone(context.WithoutCancel(r.Context()))
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		defer func() { <-c.refreshes }()
		defer c.flights.finish(k.entry, call)
		defer func() {
			// A panicking handler must not take the process down from a
			// goroutine no server recovers.
			if p := recover(); p != nil {
				c.m.errors.WithLabelValues("refresh_panic").Inc()
				c.cfg.Logger.Error("httpcache: background refresh panicked", "route", rt.name)
			}
		}()
		ctx, cancel := context.WithTimeout(rr.Context(), c.cfg.RefreshTimeout)
		defer cancel()
		rt.lead(newDiscard(), rr.WithContext(ctx), next, k, nil, true, false, call)
	}()
}

// flightGroup coalesces concurrent misses of one key in this process.
// redisx.Flight runs its loader detached from every caller; here the leader
// must run the handler on its own request and ResponseWriter, so the group
// only tells who leads and lets the others wait for the leader's record.
//
// No join across a write: a miss never waits for a handler run that began
// before a purge this process started since (written), since that run may
// have read the data before the write the purge follows. It leads a run of
// its own instead; the older run's waiters still get the older run's
// response, which was current when they began. Purges are rare next to
// reads, so one count for every key is enough.
type flightGroup struct {
	writes atomic.Uint64 // purges begun in this process
	mu     sync.Mutex
	calls  map[string]*flightCall
}

type flightCall struct {
	done   chan struct{}
	gen    uint64  // writes when the run began
	rec    *record // set before done closes, only when storable (and stored, unless bypass)
	bypass bool    // rec was not stored: Redis was unavailable
}

// written records that a purge begins: later misses start new runs.
func (g *flightGroup) written() { g.writes.Add(1) }

func (g *flightGroup) join(key string) (*flightCall, bool) {
	gen := g.writes.Load()
	g.mu.Lock()
	defer g.mu.Unlock()
	if call, ok := g.calls[key]; ok && call.gen == gen {
		return call, false
	}
	if g.calls == nil {
		g.calls = map[string]*flightCall{}
	}
	call := &flightCall{done: make(chan struct{}), gen: gen}
	g.calls[key] = call // an older run, if any, keeps its own waiters
	return call, true
}

func (g *flightGroup) finish(key string, call *flightCall) {
	g.mu.Lock()
	if g.calls[key] == call {
		delete(g.calls, key)
	}
	g.mu.Unlock()
	close(call.done)
}

// errNoReply marks a Lua reply of an unexpected shape.
var errNoReply = errors.New("httpcache: unexpected reply from Redis")

// idle reports whether no miss is being handled (tests wait on it).
func (g *flightGroup) idle() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls) == 0
}
