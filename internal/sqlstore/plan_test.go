package sqlstore

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// TestSQLiteListsUseIndexes checks with EXPLAIN QUERY PLAN that each list
// query walks an index in order instead of sorting the table, so a page
// costs the same with 3,000 scripts as with 3. (PostgreSQL's planner
// rightly prefers a scan on a tiny test table, so its plan proves nothing.)
func TestSQLiteListsUseIndexes(t *testing.T) {
	t.Run("lists", testSQLitePlans)
	t.Run("walks", testSQLiteWalkPlans)
}

func testSQLitePlans(t *testing.T) {
	st := openTestSQLite(t)
	tests := []struct {
		name, where, index string
		args               []any
	}{
		{"all", "", "scripts_created_idx", nil},
		{"genre", " WHERE s.genre = $1", "scripts_genre_created_idx", []any{"drama"}},
		{"author", " WHERE s.author_id = $1", "scripts_author_created_idx", []any{theater.NewID()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all := sqlitePlan(t, st, scriptSelect+tt.where+` ORDER BY s.created_at DESC, s.id LIMIT 20 OFFSET 0`, tt.args...)
			if !strings.Contains(all, tt.index) || strings.Contains(all, "TEMP B-TREE") {
				t.Errorf("plan:\n%s\nwant it to use %s without a temporary sort", all, tt.index)
			}
		})
	}
}

// sqlitePlan returns the EXPLAIN QUERY PLAN lines of q.
func sqlitePlan(tb testing.TB, st *Store, q string, args ...any) string {
	tb.Helper()
	rows, err := st.db.QueryContext(ctxT(tb), `EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			tb.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "\n")
}

// testSQLiteWalkPlans checks the queries ListScripts really runs (walkSQL,
// ftsWalkSQL), first pages and pages after a cursor: each is driven by the
// index of its order and sorts nothing, so it reads only the page.
func testSQLiteWalkPlans(t *testing.T) {
	st := openTestSQLite(t)
	author := mustUser(t, st, "plan@example.org", theater.RolePlaywright)
	seedCatalogue(t, st, bulkScripts(author, 500, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Minute, "Plan"))
	if _, err := st.db.ExecContext(ctxT(t), `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	from := &listPos{created: time.Date(2024, 1, 1, 3, 0, 0, 0, time.UTC), titleKey: "plan 3", id: theater.NewID()}
	tests := []struct {
		name  string
		f     theater.ScriptFilter
		seg   segment
		first string // the plan's first line names this
		want  []string
	}{
		{"newest", theater.ScriptFilter{}, segment{0, anyMatch}, "scripts_created_idx", nil},
		{"genre", theater.ScriptFilter{Genre: "drama"}, segment{0, anyMatch}, "scripts_genre_created_idx", nil},
		{"author", theater.ScriptFilter{AuthorID: author.ID}, segment{0, anyMatch}, "scripts_author_created_idx", nil},
		{"title", theater.ScriptFilter{Sort: theater.SortTitle}, segment{0, anyMatch}, "scripts_title_idx", nil},
		{"search title matches", theater.ScriptFilter{Query: "plan"}, segment{0, titleMatch}, "scripts_fts VIRTUAL TABLE", []string{"scripts_search_rowid_idx"}},
		{"search synopsis only", theater.ScriptFilter{Query: "plan"}, segment{1, bodyOnlyMatch}, "scripts_fts VIRTUAL TABLE", []string{"scripts_search_rowid_idx"}},
		{"search by title", theater.ScriptFilter{Query: "plan", Sort: theater.SortTitle}, segment{0, anyMatch}, "scripts_title_idx", nil},
		{"search newest in genre", theater.ScriptFilter{Query: "plan", Sort: theater.SortNewest, Genre: "drama"}, segment{0, anyMatch}, "scripts_fts VIRTUAL TABLE", nil},
	}
	for _, tt := range tests {
		for _, after := range []*listPos{nil, from} {
			t.Run(fmt.Sprintf("%s after %v", tt.name, after != nil), func(t *testing.T) {
				f := tt.f
				if err := f.Normalize(); err != nil {
					t.Fatal(err)
				}
				sq, _, err := st.newSearch(ctxT(t), f)
				if err != nil {
					t.Fatal(err)
				}
				var q string
				var args []any
				if st.usesFTSWalk(f, sq) {
					q, args = st.ftsWalkSQL(f, sq, tt.seg, after)
				} else {
					q, args = st.walkSQL(f, sq, tt.seg, after, 21)
				}
				plan := sqlitePlan(t, st, q, args...)
				first, _, _ := strings.Cut(plan, "\n")
				if !strings.Contains(first, tt.first) || strings.Contains(plan, "TEMP B-TREE") {
					t.Errorf("plan:\n%s\nwant it driven by %s without a temporary sort", plan, tt.first)
				}
				for _, w := range tt.want {
					if !strings.Contains(plan, w) {
						t.Errorf("plan:\n%s\nwant it to use %s", plan, w)
					}
				}
			})
		}
	}
}
