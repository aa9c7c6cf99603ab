// Package sqlstoretest opens real, empty, migrated stores for tests in other
// packages: SQLite in a temporary directory and PostgreSQL in a schema of
// its own, so tests can run in parallel against one server.
//
//	func TestX(t *testing.T) {
//		for _, b := range sqlstoretest.Backends() {
//			t.Run(b.Name, func(t *testing.T) {
//				t.Parallel()
//				st := b.Open(t) // closed (and its schema dropped) by t.Cleanup
//				...
//			})
//		}
//	}
//
// PostgreSQL is found at TEST_DATABASE_URL, else at DefaultPostgresURL. When
// it is not reachable the test fails, saying what to start: it never skips.
package sqlstoretest

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx" for schema management

	"github.com/theaterscriptpro/tsp/internal/sqlstore"
	"github.com/theaterscriptpro/tsp/internal/theater"
)

// DefaultPostgresURL is the PostgreSQL used when TEST_DATABASE_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresURL returns TEST_DATABASE_URL, or DefaultPostgresURL.
func PostgresURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// Backend opens a fresh store of one kind.
type Backend struct {
	Name string // "sqlite" or "postgres"
	Open func(tb testing.TB) *sqlstore.Store
}

// Backends returns SQLite and PostgreSQL.
func Backends() []Backend {
	return []Backend{{"sqlite", SQLite}, {"postgres", Postgres}}
}

// SQLite opens a store on a new file under tb.TempDir().
func SQLite(tb testing.TB) *sqlstore.Store {
	tb.Helper()
	return open(tb, "sqlite:"+filepath.Join(tb.TempDir(), "theater.db"))
}

// Postgres creates a uniquely named schema, opens a store confined to it
// (search_path) and drops it when the test ends.
func Postgres(tb testing.TB) *sqlstore.Store {
	tb.Helper()
	return open(tb, PostgresSchema(tb))
}

// PostgresSchema creates a uniquely named schema, dropped when the test
// ends, and returns a DATABASE_URL confined to it (search_path): for tests
// that open their own stores or start a server on it.
func PostgresSchema(tb testing.TB) string {
	tb.Helper()
	base := PostgresURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	tb.Cleanup(func() { admin.Close() })
	if err := admin.PingContext(ctx); err != nil {
		tb.Fatalf("PostgreSQL is not reachable (%v).\nThese tests need it and never skip: start a server that accepts %s\n"+
			"(Debian: apt-get install postgresql; pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start;\n"+
			"createdb -U postgres test), or set TEST_DATABASE_URL to one you have.", err, DefaultPostgresURL)
	}
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
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func open(tb testing.TB, databaseURL string) *sqlstore.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := sqlstore.Open(ctx, databaseURL)
	if err != nil {
		tb.Fatalf("sqlstore.Open: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}
