package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/logbuf"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/sqlstore"
	"github.com/theaterscriptpro/tsp/internal/sqlstore/sqlstoretest"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/redisx"
)

// backend opens a fresh, empty, migrated database for one test.
type backend struct {
	name string
	open func(tb testing.TB) (st *sqlstore.Store, url string)
}

func backends() []backend {
	return []backend{{"sqlite", openSQLite}, {"postgres", openPostgres}}
}

// eachBackend runs f once per database, as parallel subtests.
func eachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			f(t, b)
		})
	}
}

func openSQLite(tb testing.TB) (*sqlstore.Store, string) {
	tb.Helper()
	u := "sqlite:" + filepath.Join(tb.TempDir(), "theater.db")
	return openStore(tb, u), u
}

func openStore(tb testing.TB, u string) *sqlstore.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := sqlstore.Open(ctx, u)
	if err != nil {
		tb.Fatalf("sqlstore.Open: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// openPostgres gives the test a schema of its own, dropped at cleanup, so
// tests run in parallel on one database.
func openPostgres(tb testing.TB) (*sqlstore.Store, string) {
	tb.Helper()
	u := sqlstoretest.PostgresSchema(tb)
	return openStore(tb, u), u
}

// instance is one running server: the real handler in an httptest.Server.
type instance struct {
	*httptest.Server
	api  *Server
	rdb  *redisx.Client
	st   *sqlstore.Store
	logs *logbuf.Buffer
}

// options tune newInstance.
type options struct {
	redis  redisx.Config // zero: redistest.Config(tb), a prefix of the test's own
	store  *sqlstore.Store
	edit   func(*Deps)
	noPing bool // Redis may be down on purpose
}

// newInstance starts a server on the given store (or a fresh SQLite one) and
// Redis config.
func newInstance(tb testing.TB, o options) *instance {
	tb.Helper()
	cfg := o.redis
	if len(cfg.Addrs) == 0 {
		cfg = redistest.Config(tb)
	}
	var rdb *redisx.Client
	if o.noPing {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		if rdb, err = redisx.New(ctx, cfg); err != nil {
			tb.Fatalf("redisx.New: %v", err)
		}
		tb.Cleanup(rdb.Close)
	} else {
		rdb = redistest.Connect(tb, cfg)
	}
	st := o.store
	if st == nil {
		st, _ = openSQLite(tb)
	}
	logs := &logbuf.Buffer{}
	d := Deps{
		Redis: rdb, Users: st, Scripts: st, Licenses: st, Database: st,
		Logger:            slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ViewFlushInterval: 50 * time.Millisecond,
	}
	wireToolkit(tb, &d, rdb)
	if o.edit != nil {
		o.edit(&d)
	}
	api, err := New(d)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(api)
	checkContract(tb, ts.Client())
	tb.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = api.Close(ctx)
	})
	return &instance{Server: ts, api: api, rdb: rdb, st: st, logs: logs}
}

// resp is a response read in full.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		tb.Fatalf("decode %s: %v", r.body, err)
	}
}

// problemBody is what every error response must be.
type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

// client talks to an instance, optionally signed in.
type client struct {
	tb    testing.TB
	base  string
	token string
	hc    *http.Client
}

func (in *instance) client(tb testing.TB) *client {
	return &client{tb: tb, base: in.URL, hc: in.Client()}
}

// on returns a copy of c talking to another instance with the same token.
func (c *client) on(in *instance) *client {
	cp := *c
	cp.base, cp.hc = in.URL, in.Client()
	return &cp
}

// raw sends body bytes as they are, with extra headers as key, value pairs.
func (c *client) raw(method, path string, body []byte, headers ...string) resp {
	c.tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.tb.Fatalf("NewRequest %s %s: %v", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.tb.Fatalf("read body of %s %s: %v", method, path, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// do sends v encoded as JSON (no body when v is nil).
func (c *client) do(method, path string, v any, headers ...string) resp {
	c.tb.Helper()
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			c.tb.Fatalf("encode: %v", err)
		}
	}
	return c.raw(method, path, body, headers...)
}

// want checks a response's status and, for errors, that the body is
// problem+json with that status.
func want(tb testing.TB, r resp, status int, what string) {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("%s: status %d, want %d; body %s", what, r.status, status, r.body)
	}
	if r.header.Get("X-Request-ID") == "" {
		tb.Errorf("%s: no X-Request-ID", what)
	}
	if status >= 400 {
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			tb.Fatalf("%s: Content-Type %q, want application/problem+json", what, ct)
		}
		var p problemBody
		r.json(tb, &p)
		if p.Status != status || p.Title == "" || p.Type == "" {
			tb.Fatalf("%s: problem body %s does not match status %d", what, r.body, status)
		}
		for _, leak := range []string{"redis", "sql", "SELECT", "goroutine", "panic", "rueidis", "pgx", "sqlite"} {
			if strings.Contains(strings.ToLower(p.Detail), strings.ToLower(leak)) {
				tb.Fatalf("%s: detail %q leaks %q", what, p.Detail, leak)
			}
		}
	}
}

// wantField checks a 400's problem names field.
func wantField(tb testing.TB, r resp, field, what string) {
	tb.Helper()
	want(tb, r, http.StatusBadRequest, what)
	var p problemBody
	r.json(tb, &p)
	if p.Field != field || !strings.Contains(p.Detail, field) {
		tb.Fatalf("%s: problem %s does not name field %q", what, r.body, field)
	}
}

func scriptBody(title string) map[string]any {
	return map[string]any{
		"title": title, "genre": "drama", "synopsis": "Two people wait.",
		"castMin": 2, "castMax": 4, "durationMinutes": 90, "language": "en",
	}
}

func uniqueEmail(prefix string) string {
	return prefix + "." + theater.NewID() + "@example.org"
}

// wantWithin polls c until method path answers status, for writes made on
// another instance: API.md gives other instances 100 ms to stop serving
// what a write replaced (their local copies go on Redis's invalidation
// push), while the writing instance must answer at once (use want there).
func wantWithin(tb testing.TB, c *client, method, path string, status int, bound time.Duration, what string) {
	tb.Helper()
	start := time.Now()
	for {
		r := c.do(method, path, nil)
		if r.status == status || time.Since(start) > bound {
			want(tb, r, status, fmt.Sprintf("%s (polled for %v)", what, time.Since(start).Round(time.Millisecond)))
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}
