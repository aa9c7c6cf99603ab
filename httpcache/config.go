package httpcache

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// ErrInvalidConfig is wrapped by every Config and Route validation error.
var ErrInvalidConfig = errors.New("httpcache: invalid config")

// Config configures a Cache. A zero field means its documented default.
type Config struct {
	// Name identifies this cache in Cache-Status (RFC 9211). The default is
	// "tsp".
	Name string

	// LookupTimeout bounds the read of an entry. Past it, or when Redis is
	// down, the request goes to the handler and the response says
	// X-Cache: BYPASS. The default is 100ms.
	LookupTimeout time.Duration

	// StoreTimeout bounds storing an entry and purging tags. The default is 1s.
	StoreTimeout time.Duration

	// LeaseTTL is how long one instance may hold the lease to run a missed
	// key's handler while other instances wait for its entry; if it dies,
	// the lease lapses and a waiter takes over. The default is 5s.
	LeaseTTL time.Duration

	// MaxLeaseWait is the longest a request waits for another instance's
	// entry before it runs the handler itself. It bounds the wait on a
	// lease whose holder is gone but which has not lapsed — say one copied
	// to a replica just before a failover; past it the request takes the
	// lease over, so its entry is stored and the next miss does not wait
	// again. The default is 1s.
	MaxLeaseWait time.Duration

	// RefreshWorkers bounds the background refreshes of
	// stale-while-revalidate; when all are busy a stale entry is simply
	// served a little longer. The default is 4.
	RefreshWorkers int

	// RefreshTimeout bounds one background refresh. The default is 10s.
	RefreshTimeout time.Duration

	// CredentialCookies names the cookies that carry credentials (a request
	// with one is not served from nor stored in the cache, unless its route
	// is Public or PerUser). The default, nil, counts every cookie.
	CredentialCookies []string

	// StripHeaders adds request headers to the ones removed from a request
	// whose response may be stored, unless a route keys on them with Vary.
	// X-Forwarded-Host, X-Original-URL and their kind are always removed
	// (see UnkeyedHeaders).
	StripHeaders []string

	// UnstoredHeaders adds response headers that are per response and must
	// not be replayed to others; X-Request-Id and the rate-limit headers are
	// always left out, as are hop-by-hop headers and Set-Cookie.
	UnstoredHeaders []string

	// Namespaces adds key namespaces that InvalidatePatterns maps to tags,
	// besides those of the routes set up with Middleware (a process that only
	// invalidates lists them here).
	Namespaces []string

	// Now is the application clock, for Age and staleness. Instances agree
	// on lifetimes through Redis TTLs and Redis TIME, never through it. The
	// default is time.Now.
	Now func() time.Time

	// Logger receives purge failures. The default discards them.
	Logger *slog.Logger
}

func (cfg Config) withDefaults() Config {
	if cfg.Name == "" {
		cfg.Name = "tsp"
	}
	if cfg.LookupTimeout == 0 {
		cfg.LookupTimeout = 100 * time.Millisecond
	}
	if cfg.StoreTimeout == 0 {
		cfg.StoreTimeout = time.Second
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 5 * time.Second
	}
	if cfg.MaxLeaseWait == 0 {
		cfg.MaxLeaseWait = time.Second
	}
	if cfg.RefreshWorkers == 0 {
		cfg.RefreshWorkers = 4
	}
	if cfg.RefreshTimeout == 0 {
		cfg.RefreshTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Validate reports the first problem with cfg, wrapping ErrInvalidConfig.
func (cfg Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if cfg.Name != "" && !isToken(cfg.Name) {
		return bad("Name %q must be an HTTP token", cfg.Name)
	}
	for name, d := range map[string]time.Duration{
		"LookupTimeout": cfg.LookupTimeout, "StoreTimeout": cfg.StoreTimeout,
		"LeaseTTL": cfg.LeaseTTL, "RefreshTimeout": cfg.RefreshTimeout, "MaxLeaseWait": cfg.MaxLeaseWait,
	} {
		if d < 0 {
			return bad("%s must not be negative, got %s", name, d)
		}
	}
	if cfg.LeaseTTL != 0 && cfg.LeaseTTL < time.Millisecond {
		return bad("LeaseTTL must be at least 1ms, got %s", cfg.LeaseTTL)
	}
	if cfg.RefreshWorkers < 0 {
		return bad("RefreshWorkers must not be negative")
	}
	for _, h := range append(append([]string(nil), cfg.StripHeaders...), cfg.UnstoredHeaders...) {
		if !isToken(h) {
			return bad("header name %q is not a token", h)
		}
	}
	for _, c := range cfg.CredentialCookies {
		if !isToken(c) {
			return bad("cookie name %q is not a token", c)
		}
	}
	for _, ns := range cfg.Namespaces {
		if err := checkNamespace(ns); err != nil {
			return bad("Namespaces: %v", err)
		}
	}
	return nil
}

// Route configures caching for one route. A zero field means its documented
// default; the zero Route caches 200 responses for 5 minutes keyed by
// method, path and query.
type Route struct {
	// Name labels the route's metrics. The default is the Key's namespace.
	Name string

	// TTL is how long an entry is fresh, and (with no stale windows) how
	// long it lives in Redis: no entry is served past it. The default is
	// 5 minutes.
	TTL time.Duration

	// Key says what the cache key is made of. The default is Request().
	Key Key

	// Tags returns surrogate keys for the request's entry, purged together
	// with Invalidate. Every entry also carries NamespaceTag(namespace) and
	// ResourceTag(namespace, id). The default adds none.
	Tags func(r *http.Request) []string

	// Condition, when set, caches only requests for which it returns true;
	// the others go to the handler with X-Cache: BYPASS.
	Condition func(r *http.Request) bool

	// MaxBodyBytes is the largest body stored; a bigger response streams
	// through uncached. The default is 1 MiB.
	MaxBodyBytes int

	// Vary lists request headers that are part of the key (e.g.
	// Accept-Language). The handler sees them; responses carry them in
	// Vary. A response whose Vary names any other header is not stored.
	Vary []string

	// Public declares the response identical for every user, so requests
	// carrying Authorization or a credential cookie are served from and
	// stored in the cache too. The public catalogue routes set it.
	Public bool

	// PerUser, when set, keys entries by the user it returns, so requests
	// with credentials are cached per user (and responses marked private
	// may be stored). It must read the user from verified credentials
	// (the session), never from a header the client chooses. A request for
	// which it returns false is not cached.
	PerUser func(r *http.Request) (user string, ok bool)

	// StaleWhileRevalidate serves an entry this long past its TTL, with
	// X-Cache: STALE, while one background refresh runs. Default 0: never.
	StaleWhileRevalidate time.Duration

	// StaleIfError serves an entry this long past its TTL when the handler
	// answers 5xx (RFC 5861). Default 0: never.
	StaleIfError time.Duration

	// AllowClientNoCache honours a request's Cache-Control: no-cache,
	// max-age=0 (run the handler, store the result) and no-store (run it,
	// store nothing). By default the cache belongs to the server and client
	// directives are ignored, so nobody can stampede the database with them.
	AllowClientNoCache bool

	// Statuses lists response statuses stored besides 200 (e.g. 404, 410).
	Statuses []int
}

const (
	defaultTTL     = 5 * time.Minute
	defaultMaxBody = 1 << 20
)

// Validate reports the first problem with the route, wrapping
// ErrInvalidConfig.
func (rt Route) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: route %q: %s", ErrInvalidConfig, rt.Name, fmt.Sprintf(format, args...))
	}
	if rt.TTL < 0 || rt.StaleWhileRevalidate < 0 || rt.StaleIfError < 0 {
		return bad("TTL and stale windows must not be negative")
	}
	if rt.TTL != 0 && rt.TTL < time.Millisecond {
		return bad("TTL must be at least 1ms")
	}
	if rt.MaxBodyBytes < 0 {
		return bad("MaxBodyBytes must not be negative")
	}
	if err := rt.Key.orDefault().validate(); err != nil {
		return bad("%v", err)
	}
	for _, h := range rt.Vary {
		if !isToken(h) {
			return bad("Vary %q is not a header name", h)
		}
		if h == "*" {
			return bad("Vary * would never match")
		}
	}
	for _, s := range rt.Statuses {
		if s < 200 || s > 599 || s == http.StatusPartialContent || s == http.StatusNotModified {
			return bad("status %d cannot be stored", s)
		}
	}
	if rt.Public && rt.PerUser != nil {
		return bad("Public and PerUser contradict each other")
	}
	return nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}
