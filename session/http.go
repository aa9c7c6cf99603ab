package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/theaterscriptpro/tsp/problem"
	"github.com/theaterscriptpro/tsp/redisx"
)

// ManagerConfig configures a Manager. A zero field means its documented
// default.
type ManagerConfig struct {
	// CookieName is the session cookie's name. The default is "tsp_session".
	CookieName string

	// HostPrefix names the cookie "__Host-" + CookieName, which browsers
	// accept only with Secure, Path=/ and no Domain: a subdomain or a
	// network attacker cannot set or shadow it. The cookie is then always
	// Secure; only the prefixed name is read.
	HostPrefix bool

	// SecureRequest reports whether the client reached us over TLS, which
	// makes the cookie Secure. The default is r.TLS != nil; behind a
	// TLS-terminating proxy, pass a function that believes the proxy's
	// X-Forwarded-Proto only when the request comes from a trusted proxy.
	SecureRequest func(r *http.Request) bool

	// LookupTimeout bounds the Redis lookup of each request: when Redis is
	// down or slow, a route that requires a session answers 503 after at
	// most this long. The default is 300ms.
	LookupTimeout time.Duration

	// Logger receives lookup failures (never a token: Fingerprint at most),
	// at most one line per second. The default discards them.
	Logger *slog.Logger
}

const (
	// DefaultCookieName is the session cookie the API contract names.
	DefaultCookieName    = "tsp_session"
	hostPrefix           = "__Host-"
	defaultLookupTimeout = 300 * time.Millisecond
)

// Manager is the HTTP side of sessions: it finds the token in a request
// (cookie or Authorization: Bearer), loads the session into the request's
// context, and sets and clears the cookie.
type Manager struct {
	store   *Store
	cfg     ManagerConfig
	cookie  string
	lastLog atomic.Int64 // unix nanoseconds of the last failure logged
}

// NewManager validates cfg and returns a Manager for store.
func NewManager(store *Store, cfg ManagerConfig) (*Manager, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil Store", ErrInvalidConfig)
	}
	if cfg.CookieName == "" {
		cfg.CookieName = DefaultCookieName
	}
	if !validCookieName(cfg.CookieName) || strings.HasPrefix(cfg.CookieName, "__") {
		return nil, fmt.Errorf("%w: CookieName %q: want letters, digits, '-' and '_' (use HostPrefix for __Host-)", ErrInvalidConfig, cfg.CookieName)
	}
	if cfg.LookupTimeout < 0 {
		return nil, fmt.Errorf("%w: LookupTimeout must not be negative", ErrInvalidConfig)
	}
	if cfg.LookupTimeout == 0 {
		cfg.LookupTimeout = defaultLookupTimeout
	}
	if cfg.SecureRequest == nil {
		cfg.SecureRequest = func(r *http.Request) bool { return r.TLS != nil }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	name := cfg.CookieName
	if cfg.HostPrefix {
		name = hostPrefix + name
	}
	return &Manager{store: store, cfg: cfg, cookie: name}, nil
}

func validCookieName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isB64URL(s[i]) {
			return false
		}
	}
	return true
}

// CookieName returns the name the cookie is set and read under.
func (m *Manager) CookieName() string { return m.cookie }

// Store returns the store the manager loads sessions from.
func (m *Manager) Store() *Store { return m.store }

// Token returns the token the request presents: the Authorization: Bearer
// header if there is one (a request that names its credential explicitly
// means it), else the session cookie. It says nothing about validity.
func (m *Manager) Token(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, found := strings.Cut(h, " ")
		if found && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok), true
		}
		// Another scheme (Basic, ...) is not ours: fall through to the cookie.
	}
	if c, err := r.Cookie(m.cookie); err == nil && c.Value != "" {
		return c.Value, true
	}
	return "", false
}

// LoadSession is middleware for routes where a session is optional
// (public reads): a request with a live session gets it in its context;
// any other request, including one whose session cannot be checked
// because Redis is down, goes on anonymous. Use it only where anonymous
// is a safe answer.
func (m *Manager) LoadSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := m.Token(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		s, err := m.lookup(r.Context(), tok)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				m.logFailure(r, tok, err)
			}
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), s, tok)))
	})
}

// RequireSession is middleware for routes that need a signed-in user: no
// token, or one that names no live session, is 401; a session that cannot
// be checked within LookupTimeout (Redis down or slow) is 503 with
// Retry-After — never anonymous, never let through. Both are
// problem+json. A live session is touched (idle expiry extended) and put
// in the request's context.
func (m *Manager) RequireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := m.Token(r)
		if !ok {
			unauthorized(w, "sign-in required")
			return
		}
		s, err := m.lookup(r.Context(), tok)
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), s, tok)))
		case errors.Is(err, ErrNotFound):
			unauthorized(w, "the session is invalid or has expired; sign in again")
		default:
			m.logFailure(r, tok, err)
			w.Header().Set("Retry-After", "1")
			problem.Write(w, problem.Details{Status: http.StatusServiceUnavailable,
				Detail: "sessions cannot be checked right now; retry shortly"})
		}
	})
}

// lookup touches the session within LookupTimeout. The deadline is kept
// here, not left to the Redis client: whatever path a call takes (a
// reconnect's dial, a breaker probe), the request is answered on time and
// the call, its context canceled, finishes on its own.
func (m *Manager) lookup(ctx context.Context, tok string) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.LookupTimeout)
	defer cancel()
	type result struct {
		s   Session
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := m.store.Touch(ctx, tok)
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.s, r.err
	case <-ctx.Done():
		select {
		case r := <-done: // finished at the same instant: use it
			return r.s, r.err
		default:
		}
		return Session{}, fmt.Errorf("session: lookup: %w: %w", redisx.ErrUnavailable, ctx.Err())
	}
}

func unauthorized(w http.ResponseWriter, detail string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="tsp"`)
	problem.Write(w, problem.Details{Status: http.StatusUnauthorized, Detail: detail})
}

// logFailure logs a failed lookup at most once a second, so an outage
// does not flood the log; the token appears only as its Fingerprint.
func (m *Manager) logFailure(r *http.Request, tok string, err error) {
	now := time.Now().UnixNano()
	last := m.lastLog.Load()
	if now-last < int64(time.Second) || !m.lastLog.CompareAndSwap(last, now) {
		return
	}
	kind := failKind(err)
	m.cfg.Logger.LogAttrs(r.Context(), slog.LevelWarn, "session lookup failed",
		slog.String("reason", kind), slog.String("token", Fingerprint(tok)),
		slog.String("method", r.Method), slog.String("path", r.URL.Path))
}

// SetCookie sends the session cookie: HttpOnly (no script can read it),
// SameSite=Lax (not sent on cross-site POSTs), Path=/, Secure when the
// request came over TLS or HostPrefix is set. A zero expires makes a
// browser-session cookie; else it is kept until expires (pass
// Session.ExpiresAt: the server ends idle sessions on its own).
func (m *Manager) SetCookie(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	c := m.baseCookie(r)
	c.Value = token
	if !expires.IsZero() {
		c.Expires = expires.UTC()
		c.MaxAge = max(int(time.Until(expires).Seconds()), 1)
	}
	http.SetCookie(w, c)
	// A response that signs someone in is theirs alone.
	w.Header().Set("Cache-Control", "no-store")
}

// ClearCookie tells the browser to drop the session cookie (sign-out).
func (m *Manager) ClearCookie(w http.ResponseWriter, r *http.Request) {
	c := m.baseCookie(r)
	c.MaxAge = -1
	c.Expires = time.Unix(0, 0).UTC()
	http.SetCookie(w, c)
	w.Header().Set("Cache-Control", "no-store")
}

func (m *Manager) baseCookie(r *http.Request) *http.Cookie {
	return &http.Cookie{
		Name:     m.cookie,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   m.cfg.HostPrefix || m.cfg.SecureRequest(r),
	}
}

// SignIn starts a new session after the caller has authenticated the
// user: it ends the session the request presented, if any (a sign-in
// never keeps or adopts an earlier token), creates a new one and sets the
// cookie. It returns the new token (for clients that use the Bearer
// header) and the session.
func (m *Manager) SignIn(w http.ResponseWriter, r *http.Request, ns NewSession) (string, Session, error) {
	if old, ok := m.Token(r); ok {
		if err := m.store.Delete(r.Context(), old); err != nil {
			return "", Session{}, err
		}
	}
	tok, s, err := m.store.Create(r.Context(), ns)
	if err != nil {
		return "", Session{}, err
	}
	m.SetCookie(w, r, tok, s.ExpiresAt)
	return tok, s, nil
}

// SignOut ends the session the request presents and clears the cookie.
// The cookie is cleared even when Redis fails, and the error returned.
func (m *Manager) SignOut(w http.ResponseWriter, r *http.Request) error {
	m.ClearCookie(w, r)
	tok, ok := m.Token(r)
	if !ok {
		return nil
	}
	return m.store.Delete(r.Context(), tok)
}

type ctxKey struct{}

type ctxValue struct {
	s     Session
	token string
}

// NewContext returns ctx carrying s and its token, as the middleware puts
// them; tests of handlers use it too.
func NewContext(ctx context.Context, s Session, token string) context.Context {
	return context.WithValue(ctx, ctxKey{}, &ctxValue{s: s, token: token})
}

// FromContext returns the session the middleware loaded and the token
// that named it (for Delete or Rotate; never log it), or ok == false for
// an anonymous request.
func FromContext(ctx context.Context) (s Session, token string, ok bool) {
	v, ok := ctx.Value(ctxKey{}).(*ctxValue)
	if !ok {
		return Session{}, "", false
	}
	return v.s, v.token, true
}
