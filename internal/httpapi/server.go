package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/theaterscriptpro/tsp/clientip"
	"github.com/theaterscriptpro/tsp/httpcache"
	"github.com/theaterscriptpro/tsp/internal/password"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/problem"
	"github.com/theaterscriptpro/tsp/ratelimit"
	"github.com/theaterscriptpro/tsp/redisx"
	"github.com/theaterscriptpro/tsp/session"
)

// Pinger is a dependency that /readyz checks: the database.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Registry is where the server registers its metrics and what /metrics
// serves: a *prometheus.Registry is one.
type Registry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// Deps is what New wires together. Redis, the three stores and Database are
// required; a nil or zero other field means its documented default.
type Deps struct {
	// Redis carries the response cache, cache-aside values, sessions, rate
	// limits and view counters.
	Redis *redisx.Client

	// Users, Scripts and Licenses persist the domain (sqlstore.Store is all
	// three).
	Users    theater.UserStore
	Scripts  theater.ScriptStore
	Licenses theater.LicenseStore

	// Database is pinged by /readyz.
	Database Pinger

	// Logger gets one JSON line per request. The default discards them.
	Logger *slog.Logger

	// Metrics receives the server's collectors and the toolkit's (Redis,
	// cache, sessions, limiters) and is what /metrics serves. Every
	// collector New registers is named with MetricPrefix
	// (tsp_http_request_duration_seconds, tsp_redisx_errors_total, …);
	// what the caller registers itself keeps its name (theaterd registers
	// the standard go_* and process_* collectors as they are). The default
	// is a new registry of the server's own.
	Metrics Registry

	// Now is the clock licence dates are checked against. The default is
	// time.Now.
	Now func() time.Time

	// ViewFlushInterval is how often counted script views are sent to
	// Redis, in one pipeline. API.md allows counts to lag by 1 s, which is
	// the default and the maximum.
	ViewFlushInterval time.Duration

	// ReadyTimeout bounds each dependency check of /readyz. The default is
	// 500ms.
	ReadyTimeout time.Duration

	// Sessions configures the session store (SESSION_IDLE_TIMEOUT and
	// friends). The zero value is the session package's defaults.
	Sessions session.Config

	// APIRate limits every /api request per signed-in user, else per
	// client IP (RATE_LIMIT_API). The zero Rate turns the limit off.
	APIRate ratelimit.Rate

	// LoginRate limits POST /api/auth/login per client IP + email
	// (RATE_LIMIT_LOGIN); only failed sign-ins are charged. The zero Rate
	// turns the limit off.
	LoginRate ratelimit.Rate

	// TrustedProxies are the networks whose X-Forwarded-For (and
	// X-Forwarded-Proto, for the cookie's Secure flag) is believed
	// (TRUSTED_PROXIES). The default is none: the peer address is the
	// client.
	TrustedProxies []netip.Prefix

	// TracerProvider, when set, gets a server span for every request
	// (otelhttp), named after its route and carrying its request id. Nil:
	// no tracing, and no cost.
	TracerProvider trace.TracerProvider

	// PrivateMetrics leaves /metrics off the API's routes (it answers 404):
	// the caller serves MetricsHandler on a private listener (METRICS_ADDR).
	PrivateMetrics bool

	// Instances is how many API instances share Redis; when Redis is down
	// the API and login limiters fall back to RATE_LIMIT_API ÷ Instances
	// and RATE_LIMIT_LOGIN ÷ Instances in memory. The default is 1.
	Instances int

	// CacheWarm is how many response-cache entries warming refills at
	// start and after a catalogue purge, and turns on the writer's
	// refresh of a script it changed (CACHE_WARM; see warm.go). The
	// default, 0, is off.
	CacheWarm int

	// Passwords bounds the argon2id memory that sign-ins and sign-ups hold
	// at once (19 MiB per hash): the zero value is password's defaults,
	// 76 MiB (four hashes) and a 1s wait before 503.
	Passwords password.GateConfig

	// RedisMemoryInterval is how often Redis's memory, eviction policy and
	// evictions are read (redisx.MemoryWatcher; once at start as well).
	// The default is one minute.
	RedisMemoryInterval time.Duration
}

// Server is the Theater Script Pro HTTP API: every endpoint of API.md. It is
// an http.Handler; Close stops its background work.
type Server struct {
	deps    Deps
	log     *slog.Logger
	rdb     *redisx.Client
	keys    domainKeys
	now     func() time.Time
	mux     *http.ServeMux
	handler http.Handler
	metrics *httpMetrics
	views   *viewCounter
	routes  []Route

	// draining is set by Drain: /readyz answers 503 from then on.
	draining atomic.Bool

	ips          clientip.Resolver
	sessions     *session.Manager
	cache        *httpcache.Cache
	apiLimiter   *ratelimit.Limiter // nil when off
	loginLimiter *ratelimit.Limiter // nil when off
	warm         *warmer            // nil when off
	passwords    *password.Gate
	memory       *redisx.MemoryWatcher

	// The cached read routes, which cache warming fills (warm.go).
	cachedList, cachedScript http.Handler
}

// MetricPrefix starts the name of every metric the server registers, its
// own and the toolkit's: one prefix finds all of them in a Prometheus shared
// with other services. The toolkit packages (redisx, httpcache, session,
// ratelimit) name their metrics without it, for services that use them
// alone.
const MetricPrefix = "tsp_"

// Route is one registered method and pattern, as http.ServeMux reads it.
type Route struct {
	Method  string
	Pattern string
}

// ErrInvalidDeps is wrapped by New's errors.
var ErrInvalidDeps = errors.New("httpapi: invalid dependencies")

// New checks d and builds the server, registering its metrics with
// d.Metrics. It starts the view counter's flush loop and the Redis memory
// watcher: call Close when done.
func New(d Deps) (*Server, error) {
	switch {
	case d.Redis == nil:
		return nil, fmt.Errorf("%w: Redis is required", ErrInvalidDeps)
	case d.Users == nil || d.Scripts == nil || d.Licenses == nil:
		return nil, fmt.Errorf("%w: Users, Scripts and Licenses are required", ErrInvalidDeps)
	case d.Database == nil:
		return nil, fmt.Errorf("%w: Database is required", ErrInvalidDeps)
	case d.ViewFlushInterval < 0 || d.ViewFlushInterval > time.Second:
		return nil, fmt.Errorf("%w: ViewFlushInterval must be at most 1s (API.md), got %s", ErrInvalidDeps, d.ViewFlushInterval)
	case d.ReadyTimeout < 0:
		return nil, fmt.Errorf("%w: ReadyTimeout must not be negative", ErrInvalidDeps)
	case d.RedisMemoryInterval < 0:
		return nil, fmt.Errorf("%w: RedisMemoryInterval must not be negative", ErrInvalidDeps)
	case d.Instances < 0:
		return nil, fmt.Errorf("%w: Instances must not be negative", ErrInvalidDeps)
	case d.CacheWarm < 0 || d.CacheWarm > maxTopViews:
		return nil, fmt.Errorf("%w: CacheWarm must be 0 (off) to %d, got %d", ErrInvalidDeps, maxTopViews, d.CacheWarm)
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = prometheus.NewRegistry()
	}
	reg := prometheus.WrapRegistererWithPrefix(MetricPrefix, d.Metrics)
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.ViewFlushInterval == 0 {
		d.ViewFlushInterval = time.Second
	}
	if d.ReadyTimeout == 0 {
		d.ReadyTimeout = 500 * time.Millisecond
	}
	s := &Server{
		deps:    d,
		log:     d.Logger,
		rdb:     d.Redis,
		keys:    domainKeys{d.Redis.Keys()},
		now:     d.Now,
		mux:     http.NewServeMux(),
		metrics: newHTTPMetrics(),
	}
	cs, err := s.wireToolkit()
	if err != nil {
		if s.cache != nil {
			s.cache.Close()
		}
		return nil, err
	}
	s.views = newViewCounter(d.Redis, d.ViewFlushInterval, d.Logger)
	cs = append(cs, s.metrics.collectors()...)
	cs = append(cs, s.views.collectors()...)
	cs = append(cs, d.Redis.Collector())
	// Validated above, so it cannot fail.
	s.memory, _ = redisx.NewMemoryWatcher(d.Redis, redisx.MemoryWatcherConfig{Interval: d.RedisMemoryInterval, Logger: d.Logger})
	cs = append(cs, s.memory.Collector())
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			s.views.close(context.Background())
			s.cache.Close()
			return nil, fmt.Errorf("%w: register metrics: %v", ErrInvalidDeps, err)
		}
	}
	s.memory.Start()
	s.registerRoutes()
	s.handler = s.observe(s.mux)
	if d.CacheWarm > 0 {
		s.warm = newWarmer(s, d.CacheWarm, s.cachedList, s.cachedScript)
		for _, c := range s.warm.collectors() {
			if err := reg.Register(c); err != nil {
				_ = s.Close(context.Background())
				return nil, fmt.Errorf("%w: register metrics: %v", ErrInvalidDeps, err)
			}
		}
	}
	if d.TracerProvider != nil {
		s.handler = otelhttp.NewHandler(s.handler, "http.server",
			otelhttp.WithTracerProvider(d.TracerProvider),
			// The global propagator: W3C trace context unless the
			// process set another.
			otelhttp.WithPropagators(otel.GetTextMapPropagator()))
	}
	return s, nil
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Routes returns every registered method and pattern, sorted: the contract
// as the mux sees it (the OpenAPI test compares the two).
func (s *Server) Routes() []Route {
	out := append([]Route(nil), s.routes...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pattern != out[j].Pattern {
			return out[i].Pattern < out[j].Pattern
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// Drain makes /readyz answer 503 from now on, while every other route still
// serves: call it when shutdown begins, so load balancers stop sending
// requests before the listener closes.
func (s *Server) Drain() { s.draining.Store(true) }

// MetricsHandler serves what /metrics serves: the Prometheus text of
// Deps.Metrics. With Deps.PrivateMetrics, mount it on a private listener.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.deps.Metrics, promhttp.HandlerOpts{})
}

// Close stops the Redis memory watcher, sends the view counts not yet
// flushed, stops the flush loop and the response cache's background work.
// Call it after the HTTP server has drained, before closing Redis.
func (s *Server) Close(ctx context.Context) error {
	s.memory.Close()
	if s.warm != nil {
		s.warm.close()
	}
	err := s.views.close(ctx)
	if s.apiLimiter != nil {
		// Unspent leased quota goes back to the shared window.
		err = errors.Join(err, s.apiLimiter.Close(ctx))
	}
	s.cache.Close()
	return err
}

// endpoint is one method of a path.
type endpoint struct {
	method string
	h      http.Handler
}

func on(method string, h http.HandlerFunc) endpoint { return endpoint{method, h} }

// route registers the methods of one path, and the bare path for every
// other method so that it gets 405 with an Allow header as problem+json
// (the mux's own answer is text/plain).
func (s *Server) route(path string, eps ...endpoint) {
	allow := make([]string, 0, len(eps)+1)
	for _, ep := range eps {
		// The route is the path pattern alone: the method has a label
		// (and a log field) of its own.
		s.mux.Handle(ep.method+" "+path, routed(path, ep.h))
		s.routes = append(s.routes, Route{Method: ep.method, Pattern: path})
		allow = append(allow, ep.method)
		if ep.method == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	allowed := strings.Join(allow, ", ")
	s.mux.Handle(path, routed(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allowed)
		problem.Write(w, problem.Details{Status: http.StatusMethodNotAllowed, Detail: "allowed methods: " + allowed})
	})))
}

func (s *Server) registerRoutes() {
	s.route("/healthz", on(http.MethodGet, s.healthz))
	s.route("/readyz", on(http.MethodGet, s.readyz))
	if !s.deps.PrivateMetrics {
		s.route("/metrics", endpoint{http.MethodGet, s.MetricsHandler()})
	}
	s.route("/openapi.json", on(http.MethodGet, s.openAPI))

	pub := func(h http.HandlerFunc) http.Handler { return s.public(h) }
	s.route("/api/auth/register", endpoint{http.MethodPost, pub(s.register)})
	s.route("/api/auth/login", endpoint{http.MethodPost, pub(s.login)})
	s.route("/api/auth/logout", endpoint{http.MethodPost, s.signedIn(s.logout)})
	s.route("/api/me", endpoint{http.MethodGet, s.signedIn(s.me)})
	s.route("/api/sessions",
		endpoint{http.MethodGet, s.signedIn(s.listSessions)},
		endpoint{http.MethodDelete, s.signedIn(s.deleteSessions)})
	s.route("/api/sessions/{id}", endpoint{http.MethodDelete, s.signedIn(s.deleteSession)})

	// Ids are checked first: a malformed one is 404 before any session,
	// limiter, cache or store sees it.
	s.cachedList = s.cacheList(http.HandlerFunc(s.listScripts))
	s.cachedScript = s.cacheScript(http.HandlerFunc(s.getScript))
	s.route("/api/scripts",
		endpoint{http.MethodGet, s.public(s.cachedList)},
		endpoint{http.MethodPost, s.signedIn(s.createScript)})
	s.route("/api/scripts/{id}",
		endpoint{http.MethodGet, s.withID("script", s.public(s.countView(s.cachedScript)))},
		endpoint{http.MethodPut, s.withID("script", s.signedIn(s.updateScript))},
		endpoint{http.MethodDelete, s.withID("script", s.signedIn(s.deleteScript))})
	s.route("/api/scripts/{id}/stats", endpoint{http.MethodGet, s.withID("script", pub(s.scriptStats))})
	s.route("/api/scripts/{id}/licenses", endpoint{http.MethodPost, s.withID("script", s.signedIn(s.createLicense))})
	s.route("/api/users/{id}", endpoint{http.MethodGet, s.withID("user", pub(s.getUser))})
	s.route("/api/users/{id}/scripts", endpoint{http.MethodGet, s.withID("user", s.public(s.cacheUserScripts(http.HandlerFunc(s.userScripts))))})
	s.route("/api/licenses", endpoint{http.MethodGet, s.signedIn(s.listLicenses)})

	s.mux.Handle("/", routed("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.Details{Status: http.StatusNotFound, Detail: "no such endpoint"})
	})))
}

// withID answers 404 for a malformed {id} before any cache, store or Redis
// key sees it.
func (s *Server) withID(what string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !theater.ValidID(r.PathValue("id")) {
			notFound(w, what)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeJSON sends v as the response body with status.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append(b, '\n'))
	}
}

// private marks a response as the caller's alone: no shared cache keeps it.
func private(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
}
