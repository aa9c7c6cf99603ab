package sqlstore

import (
	"fmt"
	"strings"
	"testing"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// TestSQLiteListsUseIndexes checks with EXPLAIN QUERY PLAN that each list
// query walks an index in order instead of sorting the table, so a page
// costs the same with 3,000 scripts as with 3. (PostgreSQL's planner
// rightly prefers a scan on a tiny test table, so its plan proves nothing.)
func TestSQLiteListsUseIndexes(t *testing.T) {
	st := openTestSQLite(t)
	ctx := ctxT(t)
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
			q := `EXPLAIN QUERY PLAN ` + scriptSelect + tt.where + ` ORDER BY s.created_at DESC, s.id LIMIT 20 OFFSET 0`
			rows, err := st.db.QueryContext(ctx, q, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			all := strings.Join(plan, "\n")
			if !strings.Contains(all, tt.index) || strings.Contains(all, "TEMP B-TREE") {
				t.Errorf("plan:\n%s\nwant it to use %s without a temporary sort", all, tt.index)
			}
		})
	}
}

func BenchmarkListScripts(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)
			ctx := ctxT(b)
			author := mustUser(b, st, "bench@example.org", theater.RolePlaywright)
			genres := theater.Genres()
			scripts := make([]theater.Script, 3000)
			for i := range scripts {
				scripts[i] = theater.Script{ID: theater.NewID(), Title: fmt.Sprintf("Bench %d", i), AuthorID: author.ID,
					Genre: genres[i%len(genres)], Synopsis: "A play about benchmarks.", CastMin: 1, CastMax: 3, DurationMinutes: 60}
			}
			if err := st.CreateScripts(ctx, scripts); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					f := theater.ScriptFilter{Page: 1 + i%5, Genre: genres[i%len(genres)]}
					if _, err := st.ListScripts(ctx, f); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
