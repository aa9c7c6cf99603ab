package session

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

func TestCreateGetRoundTrip(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s, _ := newTestStore(t, Config{Now: clk.Now})
	ns := NewSession{UserID: "u1", Email: "ann@example.com", Role: "producer",
		UserAgent: "Mozilla/5.0", IP: "192.0.2.7", Attrs: map[string]string{"name": "Ann", "x": ""}}
	tok, created := mustCreate(t, s, ns)
	if !ValidID(created.ID) || strings.Contains(tok, created.ID) || strings.Contains(hashOfToken(t, tok), created.ID) {
		t.Fatalf("got ID %q, want a valid id unrelated to the token", created.ID)
	}
	got := mustGet(t, s, tok)
	now := clk.Now()
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"ID", got.ID, created.ID}, {"UserID", got.UserID, "u1"}, {"Email", got.Email, ns.Email},
		{"Role", got.Role, ns.Role}, {"UserAgent", got.UserAgent, ns.UserAgent}, {"IP", got.IP, ns.IP},
		{"CreatedAt", got.CreatedAt, now}, {"LastSeenAt", got.LastSeenAt, now},
		{"IdleExpiresAt", got.IdleExpiresAt, now.Add(defaultIdle)}, {"ExpiresAt", got.ExpiresAt, now.Add(defaultAbsolute)},
		{"created.ExpiresAt", created.ExpiresAt, now.Add(defaultAbsolute)},
		{"created.IdleExpiresAt", created.IdleExpiresAt, now.Add(defaultIdle)},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if !maps.Equal(got.Attrs, ns.Attrs) || !maps.Equal(created.Attrs, ns.Attrs) {
		t.Errorf("Attrs: got %v and %v, want %v", got.Attrs, created.Attrs, ns.Attrs)
	}
}

func TestCreateUsesRedisTimeWithoutClock(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, Config{})
	before := time.Now().Add(-time.Minute)
	tok, sess := mustCreate(t, s, NewSession{UserID: "u1"})
	if sess.CreatedAt.Before(before) || sess.CreatedAt.After(time.Now().Add(time.Minute)) {
		t.Fatalf("CreatedAt: got %v, want about now (Redis TIME)", sess.CreatedAt)
	}
	if got := mustGet(t, s, tok); !got.CreatedAt.Equal(sess.CreatedAt) {
		t.Fatalf("CreatedAt: got %v, want %v", got.CreatedAt, sess.CreatedAt)
	}
}

func TestCreateRefusesBadInput(t *testing.T) {
	t.Parallel()
	s, rdb := newTestStore(t, Config{})
	manyAttrs := map[string]string{}
	for i := range MaxAttrs + 1 {
		manyAttrs[strings.Repeat("k", i+1)] = "v"
	}
	bigAttrs := map[string]string{}
	for i := range 8 {
		bigAttrs[strings.Repeat("k", i+1)] = strings.Repeat("v", MaxAttrValue)
	}
	for _, tt := range []struct {
		name string
		ns   NewSession
	}{
		{"no user", NewSession{}},
		{"user with dot", NewSession{UserID: "a.b"}},
		{"user with brace", NewSession{UserID: "a}{b"}},
		{"long user", NewSession{UserID: strings.Repeat("a", MaxUserIDLen+1)}},
		{"long email", NewSession{UserID: "u", Email: strings.Repeat("e", MaxEmail+1)}},
		{"email with newline", NewSession{UserID: "u", Email: "a@b\nc"}},
		{"bad utf8 role", NewSession{UserID: "u", Role: "\xff"}},
		{"long role", NewSession{UserID: "u", Role: strings.Repeat("r", MaxRole+1)}},
		{"long ip", NewSession{UserID: "u", IP: strings.Repeat("1", MaxIP+1)}},
		{"too many attrs", NewSession{UserID: "u", Attrs: manyAttrs}},
		{"empty attr key", NewSession{UserID: "u", Attrs: map[string]string{"": "v"}}},
		{"long attr value", NewSession{UserID: "u", Attrs: map[string]string{"k": strings.Repeat("v", MaxAttrValue+1)}}},
		{"attrs too big", NewSession{UserID: "u", Attrs: bigAttrs}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok, _, err := s.Create(context.Background(), tt.ns)
			if !errors.Is(err, ErrInvalid) || tok != "" {
				t.Fatalf("Create: got %q, %v, want ErrInvalid", tok, err)
			}
		})
	}
	if keys := redistest.Keys(t, rdb); len(keys) != 0 {
		t.Fatalf("refused creates left keys: %v", keys)
	}
}

func TestUserAgentIsCut(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, Config{})
	tok, _ := mustCreate(t, s, NewSession{UserID: "u", UserAgent: "a\x00b\r\n" + strings.Repeat("é", MaxUserAgent)})
	ua := mustGet(t, s, tok).UserAgent
	if len(ua) > MaxUserAgent || !strings.HasPrefix(ua, "abé") || strings.ContainsAny(ua, "\x00\r\n") {
		t.Fatalf("UserAgent: got %d bytes %.12q..., want at most %d bytes of printable UTF-8 starting abé", len(ua), ua, MaxUserAgent)
	}
}

// TestForgedTokensFindNothing: every token the server did not issue, well
// formed or not, is ErrNotFound, and nothing is created or changed.
func TestForgedTokensFindNothing(t *testing.T) {
	t.Parallel()
	var commands []string
	s, rdb := newTestStore(t, Config{}, func(c *redisx.Config) {
		c.CommandHook = func(names []string) { commands = append(commands, names...) }
	})
	ctx := context.Background()
	realTok, _ := mustCreate(t, s, NewSession{UserID: "alice", Email: "a@example.com"})
	otherTok, _ := mustCreate(t, s, NewSession{UserID: "bob"})
	before := redistest.Keys(t, rdb)
	secret := realTok[len("alice."):]
	unknown, _ := mintToken("alice")
	malformed := []string{"", "x", "alice.", realTok[:len(realTok)-1], realTok + "A", realTok + "=",
		"alice." + strings.ReplaceAll(secret, secret[:1], "+"), "alice." + secret[:20] + "\n" + secret[21:],
		strings.Repeat("a", 65) + "." + secret, "ali{ce}." + secret, strings.Repeat("x", 100000)}
	wellFormed := []string{unknown, "bob." + secret /* alice's secret, bob's name */, "alice." + otherTok[len("bob."):]}

	commands = nil
	for _, tok := range malformed {
		for name, call := range calls(s, tok) {
			if err := call(ctx); !errors.Is(err, ErrNotFound) && !(name == "Delete" && err == nil) {
				t.Errorf("%s(malformed %.20q): got %v, want ErrNotFound", name, tok, err)
			}
		}
	}
	if len(commands) != 0 {
		t.Errorf("malformed tokens sent %v to Redis, want nothing", commands)
	}
	for _, tok := range wellFormed {
		for name, call := range calls(s, tok) {
			if err := call(ctx); !errors.Is(err, ErrNotFound) && !(name == "Delete" && err == nil) {
				t.Errorf("%s(forged %s): got %v, want ErrNotFound", name, Fingerprint(tok), err)
			}
		}
	}
	after := redistest.Keys(t, rdb)
	if len(after) != len(before) {
		t.Errorf("keys: got %v, want %v (nothing created)", after, before)
	}
	mustGet(t, s, realTok)
	mustGet(t, s, otherTok)
}

// calls are the store's operations that take a token.
func calls(s *Store, tok string) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"Get":   func(ctx context.Context) error { _, err := s.Get(ctx, tok); return err },
		"Touch": func(ctx context.Context) error { _, err := s.Touch(ctx, tok); return err },
		"Update": func(ctx context.Context) error {
			_, err := s.Update(ctx, tok, func(x *Session) { x.Role = "admin" })
			return err
		},
		"Rotate": func(ctx context.Context) error { _, _, err := s.Rotate(ctx, tok); return err },
		"Delete": func(ctx context.Context) error { return s.Delete(ctx, tok) },
	}
}

func TestIdleExpiry(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s, rdb := newTestStore(t, Config{IdleTimeout: time.Hour, TouchInterval: time.Minute, Now: clk.Now})
	tok, sess := mustCreate(t, s, NewSession{UserID: "u1"})
	clk.Advance(30 * time.Minute)
	touched, err := s.Touch(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if want := sess.CreatedAt.Add(90 * time.Minute); !touched.IdleExpiresAt.Equal(want) {
		t.Fatalf("IdleExpiresAt after touch: got %v, want %v", touched.IdleExpiresAt, want)
	}
	// A lookup without touch does not extend it.
	clk.Advance(time.Hour - time.Millisecond)
	mustGet(t, s, tok)
	clk.Advance(time.Millisecond)
	wantNotFound(t, s, tok, "one idle timeout after the last activity")
	if exists(t, rdb, s.sessionKey("u1", hashOfToken(t, tok))) {
		t.Errorf("an idle-expired session is still in Redis after it was looked up")
	}
	if n := indexLen(t, s, rdb, "u1"); n != 0 {
		t.Errorf("index: got %d entries, want 0", n)
	}
}

func TestAbsoluteExpiryIsNeverExtended(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s, _ := newTestStore(t, Config{IdleTimeout: time.Hour, AbsoluteTimeout: 3 * time.Hour, TouchInterval: time.Minute, Now: clk.Now})
	ctx := context.Background()
	tok, sess := mustCreate(t, s, NewSession{UserID: "u1"})
	end := sess.ExpiresAt
	for clk.Now().Before(end.Add(-10 * time.Minute)) {
		clk.Advance(10 * time.Minute)
		got, err := s.Touch(ctx, tok)
		if err != nil {
			t.Fatalf("Touch at %v: %v", clk.Now(), err)
		}
		if got.IdleExpiresAt.After(end) || !got.ExpiresAt.Equal(end) {
			t.Fatalf("touch extended past absolute: idle %v, absolute %v, want both <= %v", got.IdleExpiresAt, got.ExpiresAt, end)
		}
		// Rotate as well: a new token, the same end.
		next, rot, err := s.Rotate(ctx, tok)
		if err != nil {
			t.Fatalf("Rotate at %v: %v", clk.Now(), err)
		}
		if rot.IdleExpiresAt.After(end) || !rot.ExpiresAt.Equal(end) || !rot.CreatedAt.Equal(sess.CreatedAt) {
			t.Fatalf("rotate: idle %v, absolute %v, created %v; want <= %v, = %v, = %v",
				rot.IdleExpiresAt, rot.ExpiresAt, rot.CreatedAt, end, end, sess.CreatedAt)
		}
		tok = next
	}
	clk.Advance(end.Sub(clk.Now()))
	wantNotFound(t, s, tok, "at the absolute expiry, however active")
	if _, _, err := s.Rotate(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Rotate after absolute expiry: got %v, want ErrNotFound", err)
	}
}

func TestTouchWritesOncePerInterval(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s, _ := newTestStore(t, Config{TouchInterval: time.Minute, Now: clk.Now})
	ctx := context.Background()
	tok, sess := mustCreate(t, s, NewSession{UserID: "u1"})
	clk.Advance(59 * time.Second)
	got, err := s.Touch(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastSeenAt.Equal(sess.LastSeenAt) || !got.IdleExpiresAt.Equal(sess.IdleExpiresAt) {
		t.Fatalf("touch within the interval wrote: last seen %v, want %v", got.LastSeenAt, sess.LastSeenAt)
	}
	clk.Advance(time.Second)
	got, err = s.Touch(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastSeenAt.Equal(clk.Now()) || !got.IdleExpiresAt.Equal(clk.Now().Add(defaultIdle)) {
		t.Fatalf("touch after the interval: last seen %v idle %v, want %v and %v",
			got.LastSeenAt, got.IdleExpiresAt, clk.Now(), clk.Now().Add(defaultIdle))
	}
	if again := mustGet(t, s, tok); !again.LastSeenAt.Equal(got.LastSeenAt) {
		t.Fatalf("Get after touch: last seen %v, want %v (stored)", again.LastSeenAt, got.LastSeenAt)
	}
}

func TestRotate(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s, rdb := newTestStore(t, Config{Now: clk.Now})
	ctx := context.Background()
	tok, sess := mustCreate(t, s, NewSession{UserID: "u1", Email: "a@b.c", Attrs: map[string]string{"k": "v"}})
	clk.Advance(time.Hour)
	next, rot, err := s.Rotate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if next == tok || !strings.HasPrefix(next, "u1.") {
		t.Fatalf("Rotate: got a token %s for the same user", Fingerprint(next))
	}
	wantNotFound(t, s, tok, "old token after Rotate")
	got := mustGet(t, s, next)
	if got.ID != sess.ID || !got.CreatedAt.Equal(sess.CreatedAt) || !got.ExpiresAt.Equal(sess.ExpiresAt) ||
		got.Email != "a@b.c" || got.Attrs["k"] != "v" || rot.ID != sess.ID {
		t.Fatalf("rotated session: got %+v, want the same session as %+v", got, sess)
	}
	if !got.LastSeenAt.Equal(clk.Now()) {
		t.Errorf("LastSeenAt after rotate: got %v, want %v", got.LastSeenAt, clk.Now())
	}
	if _, _, err := s.Rotate(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Errorf("Rotate(old): got %v, want ErrNotFound", err)
	}
	if _, err := s.Update(ctx, tok, func(x *Session) { x.Role = "admin" }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update(old): got %v, want ErrNotFound", err)
	}
	list, err := s.List(ctx, "u1")
	if err != nil || len(list) != 1 || list[0].ID != sess.ID {
		t.Fatalf("List after rotate: got %v, %v, want the one session", list, err)
	}
	if n := indexLen(t, s, rdb, "u1"); n != 1 {
		t.Errorf("index after rotate: got %d entries, want 1", n)
	}
	if keys := sessionKeys(t, rdb); len(keys) != 1 {
		t.Errorf("session keys after rotate: got %d, want 1", len(keys))
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, Config{})
	ctx := context.Background()
	tok, sess := mustCreate(t, s, NewSession{UserID: "u1", Email: "a@b.c", Role: "producer", Attrs: map[string]string{"a": "1"}})
	got, err := s.Update(ctx, tok, func(x *Session) {
		x.Role = "admin"
		x.Email = ""
		x.Attrs["b"] = "2"
		// The store's own fields are not the caller's to change.
		x.ID, x.UserID, x.ExpiresAt = "forged", "mallory", x.ExpiresAt.Add(time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	stored := mustGet(t, s, tok)
	for _, x := range []Session{got, stored} {
		if x.Role != "admin" || x.Email != "" || x.Attrs["a"] != "1" || x.Attrs["b"] != "2" {
			t.Errorf("after Update: got role %q email %q attrs %v, want admin, empty, a=1 b=2", x.Role, x.Email, x.Attrs)
		}
		if x.ID != sess.ID || x.UserID != "u1" || !x.ExpiresAt.Equal(sess.ExpiresAt) {
			t.Errorf("Update changed the store's fields: %+v", x)
		}
	}
	if _, err := s.Update(ctx, tok, func(x *Session) { x.Role = strings.Repeat("r", MaxRole+1) }); !errors.Is(err, ErrInvalid) {
		t.Errorf("Update with a bad role: got %v, want ErrInvalid", err)
	}
	if mustGet(t, s, tok).Role != "admin" {
		t.Errorf("a refused Update wrote")
	}
}

func TestDeleteAndDeleteByID(t *testing.T) {
	t.Parallel()
	s, rdb := newTestStore(t, Config{})
	ctx := context.Background()
	a1, _ := mustCreate(t, s, NewSession{UserID: "alice"})
	a2, s2 := mustCreate(t, s, NewSession{UserID: "alice"})
	b1, sb := mustCreate(t, s, NewSession{UserID: "bob"})

	if err := s.Delete(ctx, a1); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, a1, "after Delete")
	if err := s.Delete(ctx, a1); err != nil {
		t.Errorf("Delete twice: got %v, want nil", err)
	}
	// Alice cannot end Bob's session by its id.
	if ok, err := s.DeleteByID(ctx, "alice", sb.ID); ok || err != nil {
		t.Errorf("DeleteByID(alice, bob's id): got %v, %v, want false", ok, err)
	}
	mustGet(t, s, b1)
	for _, bad := range []string{"", "x", sb.ID + "x", "{" + sb.ID[1:]} {
		if ok, err := s.DeleteByID(ctx, "bob", bad); ok || err != nil {
			t.Errorf("DeleteByID(%q): got %v, %v, want false", bad, ok, err)
		}
	}
	if ok, err := s.DeleteByID(ctx, "alice", s2.ID); !ok || err != nil {
		t.Fatalf("DeleteByID(alice, own id): got %v, %v, want true", ok, err)
	}
	wantNotFound(t, s, a2, "after DeleteByID")
	if list, _ := s.List(ctx, "alice"); len(list) != 0 {
		t.Errorf("List(alice): got %d sessions, want 0", len(list))
	}
	if n := indexLen(t, s, rdb, "alice"); n != 0 {
		t.Errorf("alice's index: got %d entries, want 0", n)
	}
	if keys := sessionKeys(t, rdb); len(keys) != 1 {
		t.Errorf("session keys: got %d, want 1 (bob's)", len(keys))
	}
}

func TestDeleteAll(t *testing.T) {
	t.Parallel()
	s, rdb := newTestStore(t, Config{})
	ctx := context.Background()
	var toks []string
	for range 3 {
		tok, _ := mustCreate(t, s, NewSession{UserID: "u1"})
		toks = append(toks, tok)
	}
	other, _ := mustCreate(t, s, NewSession{UserID: "u2"})

	// Sign out everywhere else.
	n, err := s.DeleteAll(ctx, "u1", toks[1])
	if err != nil || n != 2 {
		t.Fatalf("DeleteAll(except one): got %d, %v, want 2", n, err)
	}
	wantNotFound(t, s, toks[0], "after DeleteAll")
	wantNotFound(t, s, toks[2], "after DeleteAll")
	mustGet(t, s, toks[1])
	mustGet(t, s, other)
	if _, err := s.Touch(ctx, toks[1]); err != nil {
		t.Fatalf("kept session, Touch: %v", err)
	}
	// New sessions after a revocation live normally.
	fresh, _ := mustCreate(t, s, NewSession{UserID: "u1"})
	mustGet(t, s, fresh)
	if list, _ := s.List(ctx, "u1"); len(list) != 2 {
		t.Fatalf("List: got %d sessions, want 2", len(list))
	}
	// An except token of another user keeps nothing.
	n, err = s.DeleteAll(ctx, "u1", other)
	if err != nil || n != 2 {
		t.Fatalf("DeleteAll(except another user's): got %d, %v, want 2", n, err)
	}
	wantNotFound(t, s, toks[1], "after DeleteAll with a foreign except")
	wantNotFound(t, s, fresh, "after DeleteAll with a foreign except")
	mustGet(t, s, other)
	if keys := sessionKeys(t, rdb); len(keys) != 1 {
		t.Errorf("session keys: got %d, want 1 (u2's)", len(keys))
	}
	if n, err := s.DeleteAll(ctx, "not a user", ""); n != 0 || err != nil {
		t.Errorf("DeleteAll(invalid user): got %d, %v, want 0, nil", n, err)
	}
}

// TestDeleteAllEndsSessionsTheIndexMissed: the epoch, not the index, is
// what makes revocation complete.
func TestDeleteAllEndsSessionsTheIndexMissed(t *testing.T) {
	t.Parallel()
	s, rdb := newTestStore(t, Config{})
	ctx := context.Background()
	listed, _ := mustCreate(t, s, NewSession{UserID: "u1"})
	missed, ms := mustCreate(t, s, NewSession{UserID: "u1"})
	// Lose the second one's index entry, as a bug or an eviction might.
	member := ms.ID + ":" + hashOfToken(t, missed)
	if err := rdb.Do(ctx, rdb.B().Zrem().Key(s.indexKey("u1")).Member(member).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteAll(ctx, "u1", ""); err != nil || n != 1 {
		t.Fatalf("DeleteAll: got %d, %v, want 1 (the listed one)", n, err)
	}
	wantNotFound(t, s, listed, "listed session after DeleteAll")
	wantNotFound(t, s, missed, "unlisted session after DeleteAll")
	if exists(t, rdb, s.sessionKey("u1", hashOfToken(t, missed))) {
		t.Errorf("the unlisted revoked session is still stored after a lookup")
	}
}

func TestMaxPerUserEvictsOldest(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s, rdb := newTestStore(t, Config{MaxPerUser: 3, Now: clk.Now})
	ctx := context.Background()
	var toks []string
	for range 3 {
		tok, _ := mustCreate(t, s, NewSession{UserID: "u1"})
		toks = append(toks, tok)
		clk.Advance(2 * time.Minute)
	}
	tok4, _ := mustCreate(t, s, NewSession{UserID: "u1"})
	wantNotFound(t, s, toks[0], "oldest session over the limit")
	for _, tok := range append(toks[1:], tok4) {
		mustGet(t, s, tok)
	}
	// Activity counts: the least recently used ends, not the first created.
	clk.Advance(2 * time.Minute)
	if _, err := s.Touch(ctx, toks[1]); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	tok5, _ := mustCreate(t, s, NewSession{UserID: "u1"})
	wantNotFound(t, s, toks[2], "least recently used over the limit")
	for _, tok := range []string{toks[1], tok4, tok5} {
		mustGet(t, s, tok)
	}
	if list, _ := s.List(ctx, "u1"); len(list) != 3 {
		t.Errorf("List: got %d, want 3", len(list))
	}
	if keys := sessionKeys(t, rdb); len(keys) != 3 {
		t.Errorf("session keys: got %d, want 3 (evicted ones deleted)", len(keys))
	}
	// Operators tell these from Redis evictions by the reason.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "session_revocations_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				got[l.GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{"delete": 0, "delete_all": 0, "delete_by_id": 0, "per_user_cap": 2}
	if !maps.Equal(got, want) {
		t.Errorf("session_revocations_total by reason: got %v, want %v", got, want)
	}
}

// TestIndexHoldsOnlyLiveSessions: after expiry, rotation, deletion and a
// List, the index has exactly the live sessions.
func TestIndexHoldsOnlyLiveSessions(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s, rdb := newTestStore(t, Config{IdleTimeout: time.Hour, TouchInterval: time.Minute, Now: clk.Now})
	ctx := context.Background()
	var toks []string
	for range 6 {
		tok, _ := mustCreate(t, s, NewSession{UserID: "u1"})
		toks = append(toks, tok)
	}
	clk.Advance(40 * time.Minute)
	for _, tok := range toks[3:] { // keep three alive
		if _, err := s.Touch(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(30 * time.Minute) // the first three are now idle-expired
	if _, _, err := s.Rotate(ctx, toks[3]); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, toks[4]); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("List: got %d live sessions, want 2", len(list))
	}
	if n := indexLen(t, s, rdb, "u1"); n != int64(len(list)) {
		t.Fatalf("index: got %d entries, want %d (the live ones)", n, len(list))
	}
	clk.Advance(2 * time.Hour)
	if list, _ := s.List(ctx, "u1"); len(list) != 0 {
		t.Fatalf("List after all expired: got %d, want 0", len(list))
	}
	if exists(t, rdb, s.indexKey("u1")) {
		t.Errorf("an index with no live session still exists")
	}
}

// TestNoRawTokenInRedis scans every key the test made, and every value
// (DUMP and the typed reads), for the tokens and their secrets.
func TestNoRawTokenInRedis(t *testing.T) {
	t.Parallel()
	s, rdb := newTestStore(t, Config{})
	ctx := context.Background()
	var secrets []string
	remember := func(tok string) {
		secrets = append(secrets, tok, tok[strings.IndexByte(tok, '.')+1:])
		raw, _ := b64().DecodeString(tok[strings.IndexByte(tok, '.')+1:])
		secrets = append(secrets, string(raw))
	}
	for i := range 4 {
		tok, _ := mustCreate(t, s, NewSession{UserID: "u1", Email: "a@b.c", UserAgent: "ua", Attrs: map[string]string{"i": string(rune('0' + i))}})
		remember(tok)
		if i == 1 {
			next, _, err := s.Rotate(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			remember(next)
			if _, err := s.Update(ctx, next, func(x *Session) { x.Role = "admin" }); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.DeleteAll(ctx, "u1", secrets[len(secrets)-3]); err != nil {
		t.Fatal(err)
	}
	keys := redistest.Keys(t, rdb)
	if len(keys) == 0 {
		t.Fatal("no keys to scan")
	}
	for _, k := range keys {
		var blobs []string
		dump, err := rdb.Do(ctx, rdb.B().Dump().Key(k).Build()).ToString()
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		blobs = append(blobs, k, dump)
		typ, _ := rdb.Do(ctx, rdb.B().Type().Key(k).Build()).ToString()
		switch typ {
		case "hash":
			m, err := rdb.HGetAll(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			for f, v := range m {
				blobs = append(blobs, f, v)
			}
		case "zset":
			m, err := rdb.Do(ctx, rdb.B().Zrange().Key(k).Min("0").Max("-1").Build()).AsStrSlice()
			if err != nil {
				t.Fatal(err)
			}
			blobs = append(blobs, m...)
		case "string":
			v, _, err := rdb.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			blobs = append(blobs, string(v))
		default:
			t.Errorf("key %s has unexpected type %q", k, typ)
		}
		for _, b := range blobs {
			for _, sec := range secrets {
				if strings.Contains(b, sec) {
					t.Fatalf("key %s holds a raw token or secret", k)
				}
			}
		}
	}
}

func TestEveryKeyHasTTLAndOneSlot(t *testing.T) {
	t.Parallel()
	s, rdb := newTestStore(t, Config{})
	ctx := context.Background()
	tok, _ := mustCreate(t, s, NewSession{UserID: "u1"})
	mustCreate(t, s, NewSession{UserID: "u1"})
	if _, err := s.DeleteAll(ctx, "u1", tok); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, NewSession{UserID: "u1"})
	keys := redistest.Keys(t, rdb)
	if len(keys) != 4 { // two sessions, the index, the epoch
		t.Fatalf("keys: got %v, want 4", keys)
	}
	for _, k := range keys {
		ttl, err := rdb.TTL(ctx, k)
		if err != nil || ttl <= 0 {
			t.Errorf("key %s: TTL %v, %v; want a positive TTL", k, ttl, err)
		}
		if !strings.Contains(k, ":{u1}") {
			t.Errorf("key %s does not carry the user's hash tag", k)
		}
	}
	h := hashOfToken(t, tok)
	if got, want := s.sessionPrefix("u1")+h, s.sessionKey("u1", h); got != want {
		t.Errorf("scripts build %q, Keys builds %q", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"short idle", Config{IdleTimeout: 2 * time.Second}, true},
		{"negative idle", Config{IdleTimeout: -1}, false},
		{"negative absolute", Config{AbsoluteTimeout: -time.Hour}, false},
		{"negative touch", Config{TouchInterval: -time.Second}, false},
		{"idle below a second", Config{IdleTimeout: time.Millisecond}, false},
		{"absolute shorter than idle", Config{IdleTimeout: 2 * time.Hour, AbsoluteTimeout: time.Hour}, false},
		{"absolute over a year", Config{AbsoluteTimeout: 400 * 24 * time.Hour}, false},
		{"touch as long as idle", Config{IdleTimeout: time.Hour, TouchInterval: time.Hour}, false},
		{"max negative", Config{MaxPerUser: -1}, false},
		{"max too big", Config{MaxPerUser: maxMaxPerUser + 1}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("Validate: got %v, want ok %v", err, tt.ok)
			}
		})
	}
	if _, err := NewStore(nil, Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewStore(nil): got %v, want ErrInvalidConfig", err)
	}
}
