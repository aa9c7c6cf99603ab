package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/theaterscriptpro/tsp/clientip"
	"github.com/theaterscriptpro/tsp/httpcache"
	"github.com/theaterscriptpro/tsp/internal/password"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/ratelimit"
	"github.com/theaterscriptpro/tsp/session"
)

// wireToolkit builds the sessions and limiters from Deps and returns their
// collectors. The policies (cookie name, what the limiters key on) are the
// contract's, so they live here rather than in main.
func (s *Server) wireToolkit() ([]prometheus.Collector, error) {
	d := s.deps
	s.ips = clientip.Resolver{Trusted: d.TrustedProxies}
	store, err := session.NewStore(d.Redis, d.Sessions)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDeps, err)
	}
	s.sessions, err = session.NewManager(store, session.ManagerConfig{
		CookieName:    session.DefaultCookieName,
		SecureRequest: s.secureRequest,
		Logger:        d.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDeps, err)
	}
	s.cache, err = httpcache.New(d.Redis, httpcache.Config{
		// Only the session cookie is a credential: other cookies (analytics
		// and the like) do not make a public read uncacheable.
		CredentialCookies: []string{session.DefaultCookieName},
		Logger:            d.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDeps, err)
	}
	cs := []prometheus.Collector{store.Collector(), s.cache.Collector()}
	if !d.APIRate.Off() {
		s.apiLimiter, err = ratelimit.New(d.Redis, ratelimit.Config{
			Name: "api",
			Rate: d.APIRate,
			Key: ratelimit.KeyByUserOrAddr(func(r *http.Request) (string, bool) {
				sess, _, ok := session.FromContext(r.Context())
				return sess.UserID, ok
			}, s.clientIP),
			// A dead Redis must not take the API down with it: fall back
			// to this instance's share of the limit.
			FailurePolicy: ratelimit.LocalFallback,
			Instances:     max(d.Instances, 1),
			// A key one client hammers leases batches of the shared
			// window's quota instead of a round trip per request; cold
			// keys decide in Redis as before. Never over-admits.
			Lease:  ratelimit.LeaseConfig{Enabled: true},
			Logger: d.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("%w: RATE_LIMIT_API: %v", ErrInvalidDeps, err)
		}
		cs = append(cs, s.apiLimiter.Collector())
	}
	if !d.LoginRate.Off() {
		s.loginLimiter, err = ratelimit.New(d.Redis, ratelimit.Config{
			Name: "login",
			Rate: d.LoginRate,
			// Exact: a handful of attempts per window is all it allows.
			Algorithm: ratelimit.SlidingLog,
			// Never open: without Redis (down, full, or slower than
			// signInRedisDeadline), this instance's share of the limit
			// still holds, and login answers 503 meanwhile.
			FailurePolicy: ratelimit.LocalFallback,
			Instances:     max(d.Instances, 1),
			Timeout:       signInRedisDeadline,
			Logger:        d.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("%w: RATE_LIMIT_LOGIN: %v", ErrInvalidDeps, err)
		}
		cs = append(cs, s.loginLimiter.Collector())
	}
	if s.passwords, err = password.NewGate(d.Passwords); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDeps, err)
	}
	gate := s.passwords
	cs = append(cs,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "password_hashes_total",
			Help: "argon2id hashes run (sign-in, sign-up, and the dummy check of unknown emails)."},
			func() float64 { return float64(gate.Computed()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "password_hashes_refused_total",
			Help: "Hashes refused with 503 because the argon2id memory budget stayed full for the wait."},
			func() float64 { return float64(gate.Refused()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "password_hash_memory_peak_bytes",
			Help: "The most argon2id memory held at once since start; at most the budget."},
			func() float64 { return float64(gate.PeakKiB()) * 1024 }))
	return cs, nil
}

// apiLimit applies the API-wide limiter, when there is one.
func (s *Server) apiLimit(h http.Handler) http.Handler {
	if s.apiLimiter == nil {
		return h
	}
	return s.apiLimiter.Middleware(h)
}

// secureRequest tells whether the client reached us over TLS: directly, or
// through a trusted proxy that says so in X-Forwarded-Proto.
func (s *Server) secureRequest(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return r.Header.Get("X-Forwarded-Proto") == "https" && s.ips.FromTrustedProxy(r)
}

// Response-cache lifetimes: the original guide's cache({ttl: 300}) for the
// list and cache({ttl: 600, keyGenerator: resource('script', 'id')}) for one
// script. An author's list changes as often as the catalogue list.
const (
	ListTTL        = 5 * time.Minute
	ScriptTTL      = 10 * time.Minute
	UserScriptsTTL = 5 * time.Minute
)

// cacheList caches GET /api/scripts for every user alike, keyed on its
// normalised filter (listCacheID) in scripts:list.
func (s *Server) cacheList(h http.Handler) http.Handler {
	return s.cache.Middleware(httpcache.Route{
		Name: "scripts_list", TTL: ListTTL, Key: httpcache.Func(nsScripts+":list", listCacheID(catalogueParams)), Public: true,
	})(h)
}

// cacheScript caches GET /api/scripts/{id} under script:{id}.
func (s *Server) cacheScript(h http.Handler) http.Handler {
	return s.cache.Middleware(httpcache.Route{
		Name: "script", TTL: ScriptTTL, Key: httpcache.Resource(nsScript, "id"), Public: true,
	})(h)
}

// cacheUserScripts caches each page of GET /api/users/{id}/scripts in
// scripts:user, tagged with the author's ResourceTag so a write of one of
// their scripts purges all their pages and no one else's.
func (s *Server) cacheUserScripts(h http.Handler) http.Handler {
	return s.cache.Middleware(httpcache.Route{
		Name: "user_scripts", TTL: UserScriptsTTL, Key: httpcache.Func(nsUserScripts, listCacheID(authorParams)), Public: true,
		Tags: func(r *http.Request) []string {
			return []string{httpcache.ResourceTag(nsUserScripts, r.PathValue("id"))}
		},
	})(h)
}

// InvalidateCatalogue purges every cached list (the catalogue and each
// author's), on every instance: for tools that write scripts to the
// database directly, such as the demo loader.
func (s *Server) InvalidateCatalogue(ctx context.Context) error {
	err := s.cache.Invalidate(ctx, httpcache.NamespaceTag(nsScripts+":list"), httpcache.NamespaceTag(nsUserScripts))
	if s.warm != nil {
		s.warm.kick("purge") // the generation warmed at start, if any, is gone
	}
	return err
}

// invalidateScript drops every cached response that may show sc (the
// script itself, every list page, its author's list) on every instance,
// before the caller answers: the original guide's
// invalidateCache(['scripts:*', 'script:*']) without the scan. If Redis
// fails, httpcache stops serving those entries here at once and retries
// the purge in the background; the write itself is done, so the request
// still succeeds.
func (s *Server) invalidateScript(r *http.Request, sc theater.Script) error {
	ctx := context.WithoutCancel(r.Context())
	err := s.cache.Invalidate(ctx,
		httpcache.ResourceTag(nsScript, sc.ID),
		httpcache.NamespaceTag(nsScripts+":list"),
		httpcache.ResourceTag(nsUserScripts, sc.AuthorID))
	if err != nil {
		s.log.Warn("cache purge failed; httpcache retries it", "request_id", RequestID(r.Context()), "script", sc.ID)
	}
	return nil
}
