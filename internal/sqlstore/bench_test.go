package sqlstore

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/demo"
	"github.com/theaterscriptpro/tsp/internal/theater"
)

// catalogueSizes are the catalogue sizes BenchmarkCatalogue builds:
// CATALOGUE_SIZES (comma-separated), else 10,000. Benchmarks only run with
// -bench, so a plain `go test ./...` never builds any of them.
func catalogueSizes(tb testing.TB) []int {
	env := os.Getenv("CATALOGUE_SIZES")
	if env == "" {
		return []int{10000}
	}
	var out []int
	for _, s := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1000 || n > demo.MaxScripts {
			tb.Fatalf("CATALOGUE_SIZES: %q is not a size from 1000 to %d", s, demo.MaxScripts)
		}
		out = append(out, n)
	}
	return out
}

// openBenchSQLite opens a SQLite store for a catalogue of n scripts. With
// CATALOGUE_DIR set, the database is kept there and reused by later runs
// (a million scripts take minutes to load); else it is a temporary file.
// A load that fails half-way leaves a partial catalogue: delete it.
func openBenchSQLite(tb testing.TB, n int) (st *Store, loaded bool) {
	dir := os.Getenv("CATALOGUE_DIR")
	if dir == "" {
		return openTestSQLite(tb), false
	}
	path := filepath.Join(dir, fmt.Sprintf("catalogue-%d.db", n))
	_, err := os.Stat(path)
	return openTestSQLiteURL(tb, "sqlite:"+path), err == nil
}

// openBenchPostgres opens a PostgreSQL store for a catalogue of n scripts:
// with CATALOGUE_DIR set, in schema tsp_catalogue_N, kept for later runs;
// else in a test schema dropped at the end.
func openBenchPostgres(tb testing.TB, n int) (st *Store, loaded bool) {
	if os.Getenv("CATALOGUE_DIR") == "" {
		return openTestPostgres(tb), false
	}
	ctx := ctxT(tb)
	base := testDatabaseURL()
	schema := fmt.Sprintf("tsp_catalogue_%d", n)
	admin := adminDB(tb, base)
	if err := admin.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&loaded); err != nil {
		tb.Fatal(err)
	}
	if !loaded {
		if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
			tb.Fatal(err)
		}
	}
	st, err := Open(ctx, withSearchPath(tb, base, schema))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st, loaded
}

// rareWord is in the titles of a handful of the benchmark catalogue's
// scripts (the demo's word lists never use it).
const rareWord = "zanzibar"

// BenchmarkCatalogue measures each list the API serves on demo catalogues
// of every CATALOGUE_SIZES size, on both databases, one request at a time
// (latency, not throughput), with no cache in front:
//
//	CATALOGUE_SIZES=10000,100000 go test -run '^$' -bench Catalogue ./internal/sqlstore/
func BenchmarkCatalogue(b *testing.B) {
	for _, be := range backends() {
		for _, n := range catalogueSizes(b) {
			b.Run(fmt.Sprintf("%s/n=%d", be.name, n), func(b *testing.B) {
				benchCatalogue(b, be, n)
			})
		}
	}
}

// contextLong is for loading and benchmarking a catalogue: a million
// scripts take minutes, far past ctxT's 30 seconds.
func contextLong(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	tb.Cleanup(cancel)
	return ctx
}

func benchCatalogue(b *testing.B, be backend, n int) {
	ctx := contextLong(b)
	var (
		st     *Store
		loaded bool
	)
	if be.name == "sqlite" {
		st, loaded = openBenchSQLite(b, n)
	} else {
		st, loaded = openBenchPostgres(b, n)
	}
	if !loaded {
		t0 := time.Now()
		res, err := demo.LoadWith(ctx, st, demo.Options{Scripts: n, Progress: benchProgress(n)})
		if err != nil {
			b.Fatal(err)
		}
		rare := bulkScripts(res.Users[0], 5, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Hour, "The "+rareWord)
		if err := st.CreateScripts(ctx, rare); err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: loaded %d scripts in %s", be.name, n, time.Since(t0).Round(time.Millisecond))
	}
	// Fresh statistics and visibility map, as autovacuum (PostgreSQL) or
	// `PRAGMA optimize` (SQLite) would have them.
	maint := `ANALYZE`
	if st.dialect == postgresDialect {
		maint = `VACUUM ANALYZE`
	}
	if _, err := st.db.ExecContext(ctx, maint); err != nil {
		b.Fatal(err)
	}
	playwright, _, err := st.UserByEmail(ctx, "ada.marlowe@"+demo.EmailDomain)
	if err != nil {
		b.Fatal(err)
	}
	// The cursor of page 5,000 (rows 99,981 on) of the newest list, made
	// from the row before it; in a smaller catalogue, the middle row.
	deep := min(5000*20, n/2)
	var (
		id      string
		created time.Time
	)
	if err := st.db.QueryRowContext(ctx, `SELECT id, created_at FROM scripts ORDER BY created_at DESC, id LIMIT 1 OFFSET $1`,
		deep-1).Scan(&id, scanTime{&created}); err != nil {
		b.Fatal(err)
	}
	deepFilter := theater.ScriptFilter{}
	if err := deepFilter.Normalize(); err != nil {
		b.Fatal(err)
	}
	deepCursor := encodeCursor(deepFilter, listPos{created: created, id: id})
	page1 := mustList(b, st, theater.ScriptFilter{})

	cases := []struct {
		name string
		f    theater.ScriptFilter
	}{
		{"all", theater.ScriptFilter{}},
		{"genre", theater.ScriptFilter{Genre: "drama"}},
		{"q_common", theater.ScriptFilter{Query: "the"}},
		{"q_common_two_words", theater.ScriptFilter{Query: "the lighthouse"}},
		{"q_rare", theater.ScriptFilter{Query: rareWord}},
		{"q_nomatch", theater.ScriptFilter{Query: "zebra"}},
		{"q_prefix", theater.ScriptFilter{Query: "ligh"}},
		{"q_prefix_short", theater.ScriptFilter{Query: "th"}},
		{"q_sort_newest", theater.ScriptFilter{Query: "the", Sort: theater.SortNewest}},
		{"title_sort", theater.ScriptFilter{Sort: theater.SortTitle}},
		{"q_common_title_sort", theater.ScriptFilter{Query: "the", Sort: theater.SortTitle}},
		{"q_rare_title_sort", theater.ScriptFilter{Query: rareWord, Sort: theater.SortTitle}},
		{"q_common_genre", theater.ScriptFilter{Query: "the", Genre: "drama"}},
		{"cursor_page_2", theater.ScriptFilter{Cursor: page1.NextCursor}},
		{fmt.Sprintf("cursor_row_%d", deep), theater.ScriptFilter{Cursor: deepCursor}},
		{"page_100", theater.ScriptFilter{Page: 100}},
		{"author", theater.ScriptFilter{AuthorID: playwright.ID}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p := mustList(b, st, c.f)
			b.ReportMetric(float64(p.Total), "total")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := st.ListScripts(ctx, c.f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchProgress shows the load of a big catalogue on stderr.
func benchProgress(n int) io.Writer {
	if n >= 100000 {
		return os.Stderr
	}
	return nil
}
