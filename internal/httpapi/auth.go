package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/theaterscriptpro/tsp/internal/password"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/problem"
	"github.com/theaterscriptpro/tsp/ratelimit"
	"github.com/theaterscriptpro/tsp/session"
)

// Session attributes that carry the rest of the user, so GET /api/me costs
// the session lookup alone.
const (
	attrName      = "name"
	attrCreatedAt = "createdAt"
)

// sessionView is a session as its owner sees it.
type sessionView struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"createdAt"`
	LastSeenAt time.Time `json:"lastSeenAt"`
	// ExpiresAt is when the session ends if it is not used again: the
	// earlier of its idle and absolute expiry.
	ExpiresAt time.Time `json:"expiresAt"`
	UserAgent string    `json:"userAgent,omitempty"`
	IP        string    `json:"ip,omitempty"`
	Current   bool      `json:"current"`
}

func viewOf(s session.Session, currentID string) sessionView {
	exp := s.ExpiresAt
	if !s.IdleExpiresAt.IsZero() && s.IdleExpiresAt.Before(exp) {
		exp = s.IdleExpiresAt
	}
	return sessionView{
		ID: s.ID, CreatedAt: s.CreatedAt.UTC(), LastSeenAt: s.LastSeenAt.UTC(), ExpiresAt: exp.UTC(),
		UserAgent: s.UserAgent, IP: s.IP, Current: s.ID == currentID,
	}
}

// userOf rebuilds the signed-in user from the session.
func userOf(s session.Session) theater.User {
	u := theater.User{ID: s.UserID, Email: s.Email, Name: s.Attrs[attrName], Role: theater.Role(s.Role)}
	if t, err := time.Parse(time.RFC3339Nano, s.Attrs[attrCreatedAt]); err == nil {
		u.CreatedAt = t.UTC()
	}
	return u
}

// signedIn wraps a handler that needs a session: 401 without one, 503
// when it cannot be checked (Redis down), then the API limiter keyed on
// the user.
func (s *Server) signedIn(h http.HandlerFunc) http.Handler {
	return s.sessions.RequireSession(s.apiLimit(h))
}

// public wraps a handler anyone may call: a session, if presented and
// checkable, only changes the limiter's key from the client IP to the user.
func (s *Server) public(h http.Handler) http.Handler {
	return s.sessions.LoadSession(s.apiLimit(h))
}

// requireUser returns the signed-in user that signedIn put in the context.
func (s *Server) requireUser(w http.ResponseWriter, r *http.Request) (theater.User, bool) {
	sess, _, ok := session.FromContext(r.Context())
	if !ok {
		// Only a route registered without signedIn can get here: a bug.
		s.fail(w, r, theater.Errorf(theater.EUNAUTHORIZED, "sign-in required"))
		return theater.User{}, false
	}
	return userOf(sess), true
}

// loginRequest is the body of POST /api/auth/login.
type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// loginResponse is its answer.
type loginResponse struct {
	Token     string       `json:"token"`
	ExpiresAt time.Time    `json:"expiresAt"`
	User      theater.User `json:"user"`
}

// errBadCredentials is the one answer to a failed sign-in, whether the
// email is unknown or the password wrong.
func errBadCredentials() error {
	return theater.Errorf(theater.EUNAUTHORIZED, "the email or password is incorrect")
}

// errSignInUnavailable is the one answer to a sign-in that cannot make a
// session, or cannot be limited, or cannot get memory to hash: given before
// the password is checked wherever that can be known, so it never tells a
// right password from a wrong one. cause (which may be nil) goes to the
// request's log line only.
func errSignInUnavailable(cause error) error {
	return theater.Wrap(theater.EUNAVAILABLE, "sign-in is unavailable; retry shortly", cause)
}

// signInRedisDeadline bounds the Redis calls a sign-in makes before the
// password is checked (the login limiter's decision and the session
// probe). Far longer than the API limiter's 75ms: a sign-in spends tens of
// milliseconds on argon2id anyway, and that hashing slows a small
// machine's other calls (the soak on a loaded 2-core box got sign-in 503s
// at 250ms). A Redis slower than this is treated as down (503), never as
// "let the guess through".
const signInRedisDeadline = 500 * time.Millisecond

// sessionProbeTTL is how long a session probe's key lives.
const sessionProbeTTL = time.Second

// probeSessions reports whether a session for the user whose hash tag is
// tag could be written now: one small SET, within signInRedisDeadline, on
// the Redis node (Cluster slot) that holds that user's sessions. It fails
// when Redis is down, slower than the deadline, or full (an OOM refusal
// under noeviction) — every way SignIn would fail — and it is made before
// the password is checked, for known and unknown emails alike.
func (s *Server) probeSessions(r *http.Request, tag string) error {
	ctx, cancel := context.WithTimeout(r.Context(), signInRedisDeadline)
	defer cancel()
	key := s.keys.Tagged("signin", tag)
	return s.rdb.Do(ctx, s.rdb.B().Set().Key(key).Value("1").Px(sessionProbeTTL).Build()).Error()
}

// hashUnavailable turns the gate's refusal (too many hashes at once) into
// the 503 a client sees; other errors pass through.
func hashUnavailable(err error) error {
	if errors.Is(err, password.ErrBusy) {
		return theater.Wrap(theater.EUNAVAILABLE, "the server is busy; retry shortly", err)
	}
	return err
}

// hashPassword hashes a new password under the server's argon2id memory
// budget.
func (s *Server) hashPassword(r *http.Request, pw string) (string, error) {
	h, err := s.passwords.Hash(r.Context(), pw)
	return h, hashUnavailable(err)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var in loginRequest
	if !s.readBody(w, r, &in) {
		return
	}
	email := theater.NormalizeEmail(in.Email)
	if email == "" {
		s.fail(w, r, theater.Invalid("email", "must not be empty"))
		return
	}
	// Length and encoding are checked before any lookup, so the answer to
	// them says nothing about which emails have accounts.
	if err := theater.CheckPassword(in.Password); err != nil {
		s.fail(w, r, err)
		return
	}
	var decision *ratelimit.Decision
	if s.loginLimiter != nil {
		d, err := s.loginLimiter.Allow(r.Context(), loginKey(s.clientIP(r), email), 1)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.loginLimiter.SetHeaders(w.Header(), &d)
		if !d.Allowed {
			refuseLogin(w, &d)
			return
		}
		if d.Source != ratelimit.SourceRedis {
			// Redis did not answer the limiter in time (down, slow, full):
			// the attempt was counted locally, and no session could be made,
			// so the password is not even looked at.
			s.fail(w, r, errSignInUnavailable(errors.New("login limiter decided without redis: "+d.Source.String())))
			return
		}
		decision = &d
	}
	u, hash, err := s.deps.Users.UserByEmail(r.Context(), email)
	known := err == nil
	switch {
	case theater.ErrorCode(err) == theater.ENOTFOUND:
	case err != nil:
		s.fail(w, r, err)
		return
	}
	// The probe goes where this user's sessions live; an unknown email
	// probes a tag of its own, so both cost the same round trip.
	tag := u.ID
	if !known {
		tag = "unknown:" + loginKey(netip.Addr{}, email)
	}
	if err := s.probeSessions(r, tag); err != nil {
		s.fail(w, r, errSignInUnavailable(fmt.Errorf("session probe: %w", err)))
		return
	}
	if !known {
		// Spend the time a real check takes, then give the same answer.
		if err := s.passwords.VerifyDummy(r.Context(), in.Password); err != nil {
			s.fail(w, r, hashUnavailable(err))
			return
		}
		s.fail(w, r, errBadCredentials())
		return
	}
	match, err := s.passwords.Verify(r.Context(), in.Password, hash)
	if err != nil {
		s.fail(w, r, hashUnavailable(err))
		return
	}
	if !match {
		s.fail(w, r, errBadCredentials())
		return
	}
	tok, sess, err := s.sessions.SignIn(w, r, session.NewSession{
		UserID: u.ID, Email: u.Email, Role: string(u.Role),
		UserAgent: r.UserAgent(), IP: s.clientIP(r).String(),
		Attrs: map[string]string{attrName: u.Name, attrCreatedAt: u.CreatedAt.UTC().Format(time.RFC3339Nano)},
	})
	if err != nil {
		// Redis failed between the probe and now: the same answer as the
		// probe's, whatever the store's error was.
		s.fail(w, r, errSignInUnavailable(fmt.Errorf("sign in: %w", err)))
		return
	}
	if decision != nil {
		// Only failed sign-ins count against the limit: a user signing in
		// on several devices is not an attack.
		if err := s.loginLimiter.Refund(r.Context(), *decision); err != nil {
			s.log.Warn("login limiter refund", "request_id", RequestID(r.Context()), "error", err.Error())
		}
	}
	private(w)
	s.writeJSON(w, r, http.StatusOK, loginResponse{Token: tok, ExpiresAt: viewOf(sess, "").ExpiresAt, User: u})
}

// loginKey is the login limiter's identifier: the client address (IPv6 by
// /64) and a hash of the normalised email, so Redis keys, MONITOR and slow
// logs never show an email address.
func loginKey(ip netip.Addr, email string) string {
	sum := sha256.Sum256([]byte(email))
	return ratelimit.AddrKey(ip) + ":" + hex.EncodeToString(sum[:12])
}

// refuseLogin answers a sign-in the login limiter refused.
func refuseLogin(w http.ResponseWriter, d *ratelimit.Decision) {
	secs := int64((d.RetryAfter + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", itoa64(secs))
	problem.Write(w, problem.Details{Status: http.StatusTooManyRequests,
		Detail: "too many sign-in attempts; retry in " + itoa64(secs) + " s"})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := s.sessions.SignOut(w, r); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// meResponse is the body of GET /api/me.
type meResponse struct {
	User    theater.User `json:"user"`
	Session sessionView  `json:"session"`
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	sess, _, _ := session.FromContext(r.Context())
	private(w)
	s.writeJSON(w, r, http.StatusOK, meResponse{User: userOf(sess), Session: viewOf(sess, sess.ID)})
}

// sessionList is the body of GET /api/sessions.
type sessionList struct {
	Items []sessionView `json:"items"`
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	cur, _, _ := session.FromContext(r.Context())
	all, err := s.sessions.Store().List(r.Context(), cur.UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := sessionList{Items: make([]sessionView, 0, len(all))}
	for _, x := range all {
		out.Items = append(out.Items, viewOf(x, cur.ID))
	}
	private(w)
	s.writeJSON(w, r, http.StatusOK, out)
}

// deleteSessions is "sign out everywhere": every session of the user ends,
// this one included.
func (s *Server) deleteSessions(w http.ResponseWriter, r *http.Request) {
	cur, _, _ := session.FromContext(r.Context())
	if _, err := s.sessions.Store().DeleteAll(r.Context(), cur.UserID, ""); err != nil {
		s.fail(w, r, err)
		return
	}
	s.sessions.ClearCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	cur, _, _ := session.FromContext(r.Context())
	id := r.PathValue("id")
	if !session.ValidID(id) {
		notFound(w, "session")
		return
	}
	found, err := s.sessions.Store().DeleteByID(r.Context(), cur.UserID, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !found {
		notFound(w, "session")
		return
	}
	if id == cur.ID {
		s.sessions.ClearCookie(w, r)
	}
	w.WriteHeader(http.StatusNoContent)
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
