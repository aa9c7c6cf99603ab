package httpcache

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// newCache returns a Cache on a client of its own prefix, closed at cleanup.
//
// Unless cfg says otherwise the lookup deadline is long: on a loaded test
// machine the production default (100ms) makes some lookups fail open,
// which is right in production and noise in tests about anything else.
// TestRedisDownBypasses sets a short one on purpose.
func newCache(tb testing.TB, rdb *redisx.Client, cfg Config) *Cache {
	tb.Helper()
	if cfg.LookupTimeout == 0 {
		cfg.LookupTimeout = 5 * time.Second
	}
	c, err := New(rdb, cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// fakeClock is a replaceable app clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// counting is a handler that counts its calls and answers with body(r).
type counting struct {
	n    atomic.Int64
	body func(w http.ResponseWriter, r *http.Request)
}

func (h *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.n.Add(1)
	h.body(w, r)
}

func okHandler(text string) *counting {
	return &counting{body: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, text)
	}}
}

// mount serves h behind the route's middleware on pattern.
func mount(c *Cache, pattern string, rt Route, h http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(pattern, c.Middleware(rt)(h))
	return mux
}

// get runs one request through h and returns the recorder.
func get(tb testing.TB, h http.Handler, target string, hdr ...string) *httptest.ResponseRecorder {
	tb.Helper()
	return do(tb, h, http.MethodGet, target, hdr...)
}

func do(tb testing.TB, h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	tb.Helper()
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func wantXCache(tb testing.TB, w *httptest.ResponseRecorder, want string) {
	tb.Helper()
	if got := w.Header().Get("X-Cache"); got != want {
		tb.Fatalf("X-Cache = %q, want %q (status %d, Cache-Status %q, body %q)", got, want, w.Code, w.Header().Get("Cache-Status"), trunc(w.Body.String()))
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !cond() {
		if ctx.Err() != nil {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ = strings.Contains
var _ = redistest.Client
