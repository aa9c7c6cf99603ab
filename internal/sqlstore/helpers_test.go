package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// defaultTestDatabaseURL is the PostgreSQL the tests use unless
// TEST_DATABASE_URL says otherwise.
const defaultTestDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func testDatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultTestDatabaseURL
}

// backend opens a fresh, empty, migrated store for one test.
type backend struct {
	name string
	open func(tb testing.TB) *Store
}

func backends() []backend {
	return []backend{
		{"sqlite", openTestSQLite},
		{"postgres", openTestPostgres},
	}
}

// eachBackend runs f as a parallel subtest against every backend, each with
// its own empty database.
func eachBackend(t *testing.T, f func(t *testing.T, st *Store)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			f(t, b.open(t))
		})
	}
}

// openTestSQLite opens a store on a file in a directory that does not exist
// yet, so every test also checks that Open creates it.
func openTestSQLite(tb testing.TB) *Store {
	tb.Helper()
	return openTestSQLiteURL(tb, "sqlite:"+filepath.Join(tb.TempDir(), "data", "theater.db"))
}

func openTestSQLiteURL(tb testing.TB, u string) *Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := Open(ctx, u)
	if err != nil {
		tb.Fatalf("Open(%q): %v", u, err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// openTestPostgres creates a uniquely named schema, opens a store whose
// connections all use it (search_path), and drops it when the test ends, so
// tests run in parallel on one database without seeing each other.
func openTestPostgres(tb testing.TB) *Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base := testDatabaseURL()
	admin := adminDB(tb, base)
	schema := "tsp_test_" + theater.NewID()
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	st, err := Open(ctx, withSearchPath(tb, base, schema))
	if err != nil {
		tb.Fatalf("Open(postgres, schema %s): %v", schema, err)
	}
	tb.Cleanup(func() { st.Close() }) // runs before the drop: cleanups are LIFO
	return st
}

// withSearchPath adds search_path=schema to a PostgreSQL URL; pgx sends
// unknown URL parameters to the server as run-time parameters.
func withSearchPath(tb testing.TB, base, schema string) string {
	tb.Helper()
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("TEST_DATABASE_URL %q: %v", base, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// adminDB connects to PostgreSQL for schema management, failing the test
// with instructions when the server is not there: these tests never skip.
func adminDB(tb testing.TB, base string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatalf("TEST_DATABASE_URL %q: %v", base, err)
	}
	tb.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		tb.Fatalf("PostgreSQL is not reachable at %s: %v\n"+
			"The sqlstore tests need a PostgreSQL server (they never skip). Either start one that accepts\n"+
			"  %s\n"+
			"(Debian: apt-get install postgresql && pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start,\n"+
			"then createdb -U postgres test, with trust auth for 127.0.0.1), or set TEST_DATABASE_URL to one you have.",
			redact(base), err, defaultTestDatabaseURL)
	}
	return db
}

func ctxT(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// wantCode fails tb unless err's theater code is want, and checks that the
// client-facing message carries no SQL or driver text.
func wantCode(tb testing.TB, err error, want string) {
	tb.Helper()
	if got := theater.ErrorCode(err); got != want {
		tb.Fatalf("error %v: got code %q, want %q", err, got, want)
	}
	if err == nil {
		return
	}
	msg := strings.ToLower(theater.ErrorMessage(err))
	for _, leak := range []string{"sql", "constraint", "select", "insert", "pgx", "pq:", "syntax", "duplicate key", "violates", "relation", "locked", "busy"} {
		if strings.Contains(msg, leak) {
			tb.Fatalf("error message %q leaks driver detail %q", theater.ErrorMessage(err), leak)
		}
	}
}

// seq makes unique but readable emails across a test.
type seq struct{ n int }

func (s *seq) email(prefix string) string {
	s.n++
	return fmt.Sprintf("%s%d@example.org", prefix, s.n)
}

// mustUser creates a user with role and a placeholder hash.
func mustUser(tb testing.TB, st *Store, email string, role theater.Role) theater.User {
	tb.Helper()
	u, err := st.CreateUser(ctxT(tb), theater.NewUser{Email: email, Password: "long enough", Name: "User " + email, Role: role}, "$argon2id$placeholder")
	if err != nil {
		tb.Fatalf("CreateUser(%s): %v", email, err)
	}
	return u
}

func scriptInput(title string) theater.ScriptInput {
	return theater.ScriptInput{Title: title, Genre: "drama", Synopsis: "A synopsis of " + title + ".",
		CastMin: 2, CastMax: 6, DurationMinutes: 90, Language: "en"}
}

func mustScript(tb testing.TB, st *Store, authorID string, in theater.ScriptInput) theater.Script {
	tb.Helper()
	sc, err := st.CreateScript(ctxT(tb), authorID, in)
	if err != nil {
		tb.Fatalf("CreateScript(%q): %v", in.Title, err)
	}
	return sc
}
