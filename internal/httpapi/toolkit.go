package httpapi

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/ratelimit"
	"github.com/theaterscriptpro/tsp/session"
)

// wireToolkit builds the sessions and limiters from Deps and returns their
// collectors. The policies (cookie name, what the limiters key on) are the
// contract's, so they live here rather than in main.
func (s *Server) wireToolkit() ([]prometheus.Collector, error) {
	d := s.deps
	s.ips = ratelimit.IPResolver{Trusted: d.TrustedProxies}
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
	cs := []prometheus.Collector{store.Collector()}
	if !d.APIRate.Off() {
		s.apiLimiter, err = ratelimit.New(d.Redis, ratelimit.Config{
			Name: "api",
			Rate: d.APIRate,
			Key: ratelimit.KeyByUser(func(r *http.Request) (string, bool) {
				sess, _, ok := session.FromContext(r.Context())
				return sess.UserID, ok
			}, s.ips),
			// A dead Redis must not take the API down with it: fall back
			// to this instance's share of the limit.
			FailurePolicy: ratelimit.LocalFallback,
			Instances:     max(d.Instances, 1),
			Logger:        d.Logger,
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
			Logger:    d.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("%w: RATE_LIMIT_LOGIN: %v", ErrInvalidDeps, err)
		}
		cs = append(cs, s.loginLimiter.Collector())
	}
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
	if len(s.deps.TrustedProxies) == 0 || r.Header.Get("X-Forwarded-Proto") != "https" {
		return false
	}
	peer := ratelimit.IPResolver{}.ClientIP(r)
	for _, p := range s.deps.TrustedProxies {
		if p.Contains(peer) {
			return true
		}
	}
	return false
}

// cacheList, cacheScript and cacheUserScripts are the response caches of
// the public reads. The response-cache package is not in the tree yet, so
// they serve from the handler.
func (s *Server) cacheList(h http.Handler) http.Handler        { return h }
func (s *Server) cacheScript(h http.Handler) http.Handler      { return h }
func (s *Server) cacheUserScripts(h http.Handler) http.Handler { return h }

// invalidateScript drops every cached response that may show sc: the
// script, every list, its author's list. With no response cache yet there
// is nothing to drop.
func (s *Server) invalidateScript(r *http.Request, sc theater.Script) error { return nil }
