package session

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// clock is a test clock the store's scripts take as their time.
type clock struct{ ms atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ms.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	return c
}

func (c *clock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *clock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// newTestStore returns a store on the shared test Redis under a prefix of
// its own. edit may change the client's Config (e.g. to add a hook).
func newTestStore(tb testing.TB, cfg Config, edit ...func(*redisx.Config)) (*Store, *redisx.Client) {
	tb.Helper()
	rdb := redistest.Client(tb, edit...)
	s, err := NewStore(rdb, cfg)
	if err != nil {
		tb.Fatalf("NewStore: %v", err)
	}
	return s, rdb
}

func mustCreate(tb testing.TB, s *Store, ns NewSession) (string, Session) {
	tb.Helper()
	tok, sess, err := s.Create(context.Background(), ns)
	if err != nil {
		tb.Fatalf("Create(%+v): %v", ns, err)
	}
	return tok, sess
}

func mustGet(tb testing.TB, s *Store, token string) Session {
	tb.Helper()
	sess, err := s.Get(context.Background(), token)
	if err != nil {
		tb.Fatalf("Get(%s): %v", Fingerprint(token), err)
	}
	return sess
}

func wantNotFound(tb testing.TB, s *Store, token, when string) {
	tb.Helper()
	ctx := context.Background()
	if _, err := s.Get(ctx, token); !errors.Is(err, ErrNotFound) {
		tb.Fatalf("%s: Get: got err %v, want ErrNotFound", when, err)
	}
	if _, err := s.Touch(ctx, token); !errors.Is(err, ErrNotFound) {
		tb.Fatalf("%s: Touch: got err %v, want ErrNotFound", when, err)
	}
}

// indexLen is ZCARD of the user's index, read directly.
func indexLen(tb testing.TB, s *Store, rdb *redisx.Client, userID string) int64 {
	tb.Helper()
	n, err := rdb.Do(context.Background(), rdb.B().Zcard().Key(s.indexKey(userID)).Build()).AsInt64()
	if err != nil {
		tb.Fatalf("ZCARD: %v", err)
	}
	return n
}

// sessionKeys lists the test's session hashes (not index or epoch keys).
func sessionKeys(tb testing.TB, rdb *redisx.Client) []string {
	tb.Helper()
	var out []string
	for _, k := range redistest.Keys(tb, rdb) {
		if strings.HasPrefix(k, rdb.Keys().Prefix()+"session:") {
			out = append(out, k)
		}
	}
	return out
}

// hashOfToken is the secret hash a well-formed token is stored under.
func hashOfToken(tb testing.TB, token string) string {
	tb.Helper()
	_, h, ok := parseToken(token)
	if !ok {
		tb.Fatalf("token %s does not parse", Fingerprint(token))
	}
	return h
}

func exists(tb testing.TB, rdb *redisx.Client, key string) bool {
	tb.Helper()
	n, err := rdb.Exists(context.Background(), key)
	if err != nil {
		tb.Fatalf("EXISTS: %v", err)
	}
	return n == 1
}
