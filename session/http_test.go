package session

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/problem"
)

func newTestManager(tb testing.TB, s *Store, cfg ManagerConfig) *Manager {
	tb.Helper()
	m, err := NewManager(s, cfg)
	if err != nil {
		tb.Fatalf("NewManager: %v", err)
	}
	return m
}

// seen is a handler that records what the middleware put in the context.
type seen struct {
	called bool
	s      Session
	token  string
	ok     bool
}

func (h *seen) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.called = true
	h.s, h.token, h.ok = FromContext(r.Context())
	w.WriteHeader(http.StatusOK)
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func wantProblem(tb testing.TB, w *httptest.ResponseRecorder, status int) {
	tb.Helper()
	if w.Code != status {
		tb.Fatalf("status: got %d, want %d (body %s)", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != problem.ContentType {
		tb.Fatalf("Content-Type: got %q, want %q", ct, problem.ContentType)
	}
	var p problem.Details
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != status {
		tb.Fatalf("body: got %s (%v), want a problem with status %d", w.Body, err, status)
	}
}

func TestRequireSession(t *testing.T) {
	t.Parallel()
	s, rdb := newTestStore(t, Config{})
	m := newTestManager(t, s, ManagerConfig{})
	tok, sess := mustCreate(t, s, NewSession{UserID: "alice", Email: "a@example.com"})
	secret := tok[len("alice."):]
	unknown, _ := mintToken("alice")
	keysBefore := len(redistest.Keys(t, rdb))

	cookie := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: DefaultCookieName, Value: v}) }
	}
	header := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", v) }
	}
	tests := []struct {
		name   string
		edit   []func(*http.Request)
		status int
	}{
		{"no token", nil, 401},
		{"cookie", []func(*http.Request){cookie(tok)}, 200},
		{"bearer", []func(*http.Request){header("Bearer " + tok)}, 200},
		{"bearer lower case", []func(*http.Request){header("bearer " + tok)}, 200},
		{"basic auth falls back to the cookie", []func(*http.Request){header("Basic dTpw"), cookie(tok)}, 200},
		{"bad bearer does not fall back to the cookie", []func(*http.Request){header("Bearer " + unknown), cookie(tok)}, 401},
		{"unknown", []func(*http.Request){cookie(unknown)}, 401},
		{"forged user", []func(*http.Request){cookie("bob." + secret)}, 401},
		{"truncated", []func(*http.Request){cookie(tok[:len(tok)-1])}, 401},
		{"over-long", []func(*http.Request){cookie(tok + "AAAA")}, 401},
		{"huge", []func(*http.Request){header("Bearer " + strings.Repeat("A", 8000))}, 401},
		{"non-base64", []func(*http.Request){cookie("alice." + strings.Repeat("*", 43))}, 401},
		{"padded", []func(*http.Request){header("Bearer " + tok + "=")}, 401},
		{"empty bearer", []func(*http.Request){header("Bearer ")}, 401},
		{"empty cookie", []func(*http.Request){cookie("")}, 401},
		{"other cookie name", []func(*http.Request){func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "session", Value: tok})
		}}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/me", nil)
			for _, e := range tt.edit {
				e(r)
			}
			h := &seen{}
			w := serve(m.RequireSession(h), r)
			if tt.status != 200 {
				wantProblem(t, w, tt.status)
				if h.called {
					t.Fatalf("the handler ran for a request without a live session")
				}
				if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate: got %q, want Bearer", got)
				}
				return
			}
			if w.Code != 200 || !h.ok || h.s.ID != sess.ID || h.token != tok || h.s.Email != "a@example.com" {
				t.Fatalf("got status %d, context %v %q, want 200 and the session", w.Code, h.ok, h.s.ID)
			}
		})
	}
	if got := len(redistest.Keys(t, rdb)); got != keysBefore {
		t.Errorf("keys: got %d, want %d (rejected tokens create nothing)", got, keysBefore)
	}
	if list, _ := s.List(context.Background(), "bob"); len(list) != 0 {
		t.Errorf("a forged token made a session for bob")
	}
}

func TestRequireSessionTouches(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s, _ := newTestStore(t, Config{Now: clk.Now})
	m := newTestManager(t, s, ManagerConfig{})
	tok, sess := mustCreate(t, s, NewSession{UserID: "u1"})
	clk.Advance(2 * time.Minute)
	r := httptest.NewRequest("GET", "/api/me", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	h := &seen{}
	serve(m.RequireSession(h), r)
	if !h.ok || !h.s.IdleExpiresAt.After(sess.IdleExpiresAt) {
		t.Fatalf("IdleExpiresAt: got %v, want later than %v", h.s.IdleExpiresAt, sess.IdleExpiresAt)
	}
}

func TestLoadSessionIsOptional(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, Config{})
	m := newTestManager(t, s, ManagerConfig{})
	tok, sess := mustCreate(t, s, NewSession{UserID: "u1"})
	unknown, _ := mintToken("u1")
	for _, tt := range []struct {
		name  string
		token string
		want  bool
	}{{"none", "", false}, {"live", tok, true}, {"unknown", unknown, false}, {"malformed", "x.y", false}} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/scripts", nil)
			if tt.token != "" {
				r.AddCookie(&http.Cookie{Name: DefaultCookieName, Value: tt.token})
			}
			h := &seen{}
			w := serve(m.LoadSession(h), r)
			if w.Code != 200 || !h.called || h.ok != tt.want || (tt.want && h.s.ID != sess.ID) {
				t.Fatalf("got status %d, called %v, session %v; want 200, true, %v", w.Code, h.called, h.ok, tt.want)
			}
		})
	}
}

func findCookie(tb testing.TB, w *httptest.ResponseRecorder, name string) *http.Cookie {
	tb.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	tb.Fatalf("no Set-Cookie %s in %v", name, w.Header()["Set-Cookie"])
	return nil
}

func TestSignInAndOutCookies(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, Config{})
	ctx := context.Background()
	for _, tt := range []struct {
		name       string
		cfg        ManagerConfig
		tls        bool
		proto      string
		cookieName string
		secure     bool
	}{
		{"plain http", ManagerConfig{}, false, "", "tsp_session", false},
		{"tls", ManagerConfig{}, true, "", "tsp_session", true},
		{"untrusted forwarded proto", ManagerConfig{}, false, "https", "tsp_session", false},
		{"trusted proxy", ManagerConfig{SecureRequest: func(r *http.Request) bool {
			return r.Header.Get("X-Forwarded-Proto") == "https"
		}}, false, "https", "tsp_session", true},
		{"host prefix", ManagerConfig{HostPrefix: true}, false, "", "__Host-tsp_session", true},
		{"custom name", ManagerConfig{CookieName: "sid"}, true, "", "sid", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestManager(t, s, tt.cfg)
			req := func() *http.Request {
				r := httptest.NewRequest("POST", "/api/auth/login", nil)
				if tt.tls {
					r.TLS = &tls.ConnectionState{}
				}
				if tt.proto != "" {
					r.Header.Set("X-Forwarded-Proto", tt.proto)
				}
				return r
			}
			// A sign-in from a browser that still holds an old session ends it.
			old, _ := mustCreate(t, s, NewSession{UserID: "u1"})
			r := req()
			r.AddCookie(&http.Cookie{Name: m.CookieName(), Value: old})
			w := httptest.NewRecorder()
			tok, sess, err := m.SignIn(w, r, NewSession{UserID: "u1", Email: "a@b.c"})
			if err != nil {
				t.Fatal(err)
			}
			wantNotFound(t, s, old, "the session presented at sign-in")
			c := findCookie(t, w, tt.cookieName)
			if c.Value != tok || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" ||
				c.Secure != tt.secure || c.Domain != "" {
				t.Fatalf("sign-in cookie: got %+v, want HttpOnly, SameSite=Lax, Path=/, Secure=%v, no Domain", c, tt.secure)
			}
			if d := c.Expires.Sub(sess.ExpiresAt); d < -time.Second || d > time.Second {
				t.Errorf("Expires: got %v, want %v", c.Expires, sess.ExpiresAt)
			}
			if c.MaxAge <= 0 {
				t.Errorf("Max-Age: got %d, want positive", c.MaxAge)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control: got %q, want no-store", cc)
			}
			// The cookie signs the next request in.
			r = req()
			r.AddCookie(c)
			h := &seen{}
			serve(m.RequireSession(h), r)
			if !h.ok || h.s.ID != sess.ID {
				t.Fatalf("the sign-in cookie does not sign in")
			}
			// Sign-out ends the session and clears the cookie.
			r = req()
			r.AddCookie(c)
			w = httptest.NewRecorder()
			if err := m.SignOut(w, r); err != nil {
				t.Fatal(err)
			}
			cleared := findCookie(t, w, tt.cookieName)
			if cleared.Value != "" || cleared.MaxAge >= 0 || !cleared.HttpOnly || cleared.Path != "/" ||
				cleared.Secure != tt.secure || cleared.SameSite != http.SameSiteLaxMode {
				t.Fatalf("sign-out cookie: got %+v, want empty, Max-Age<0, same attributes", cleared)
			}
			if _, err := s.Get(ctx, tok); !errors.Is(err, ErrNotFound) {
				t.Fatalf("session after sign-out: got %v, want ErrNotFound", err)
			}
		})
	}
}

func TestHostPrefixIgnoresThePlainCookie(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, Config{})
	m := newTestManager(t, s, ManagerConfig{HostPrefix: true})
	tok, _ := mustCreate(t, s, NewSession{UserID: "u1"})
	r := httptest.NewRequest("GET", "/", nil)
	// A cookie without the prefix may have been set by a sibling domain.
	r.AddCookie(&http.Cookie{Name: DefaultCookieName, Value: tok})
	wantProblem(t, serve(m.RequireSession(&seen{}), r), 401)
}

func TestNewManagerValidates(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, Config{})
	for _, tt := range []struct {
		name string
		cfg  ManagerConfig
	}{
		{"space in name", ManagerConfig{CookieName: "a b"}},
		{"semicolon in name", ManagerConfig{CookieName: "a;b"}},
		{"prefix spelled out", ManagerConfig{CookieName: "__Host-x"}},
		{"long name", ManagerConfig{CookieName: strings.Repeat("a", 65)}},
		{"negative timeout", ManagerConfig{LookupTimeout: -time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewManager(s, tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewManager: got %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := NewManager(nil, ManagerConfig{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewManager(nil): got %v, want ErrInvalidConfig", err)
	}
}

func TestFromContextAnonymous(t *testing.T) {
	t.Parallel()
	if _, _, ok := FromContext(context.Background()); ok {
		t.Fatal("FromContext on a bare context: got ok")
	}
	ctx := NewContext(context.Background(), Session{ID: "x"}, "tok")
	if s, tok, ok := FromContext(ctx); !ok || s.ID != "x" || tok != "tok" {
		t.Fatalf("FromContext: got %v %q %v", s, tok, ok)
	}
}
