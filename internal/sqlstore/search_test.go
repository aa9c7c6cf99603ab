package sqlstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// catalogueRow is a script of a test catalogue, by key.
type catalogueRow struct {
	key, title, synopsis, genre string
	minute                      int
}

// seedKeyed inserts rows by author at known times and returns key -> id.
func seedKeyed(tb testing.TB, st *Store, author theater.User, rows []catalogueRow) map[string]string {
	tb.Helper()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := map[string]string{}
	var scripts []theater.Script
	for _, r := range rows {
		id := theater.NewID()
		ids[r.key] = id
		g := r.genre
		if g == "" {
			g = "drama"
		}
		scripts = append(scripts, theater.Script{ID: id, Title: r.title, AuthorID: author.ID, Genre: g, Synopsis: r.synopsis,
			CastMin: 1, CastMax: 2, DurationMinutes: 60, Language: "en", CreatedAt: base.Add(time.Duration(r.minute) * time.Minute)})
	}
	seedCatalogue(tb, st, scripts)
	return ids
}

// keysOf names the items of a page by their keys.
func keysOf(items []theater.Script, ids map[string]string) []string {
	byID := map[string]string{}
	for k, id := range ids {
		byID[id] = k
	}
	out := []string{}
	for _, it := range items {
		out = append(out, byID[it.ID])
	}
	return out
}

func mustList(tb testing.TB, st *Store, f theater.ScriptFilter) theater.ScriptPage {
	tb.Helper()
	p, err := st.ListScripts(ctxT(tb), f)
	if err != nil {
		tb.Fatalf("ListScripts(%+v): %v", f, err)
	}
	return p
}

func TestSearch(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		author := mustUser(t, st, "chekhov@example.org", theater.RolePlaywright)
		ids := seedKeyed(t, st, author, []catalogueRow{
			{"seagull", "The Seagull", "A young actress, a writer and a lake.", "", 1},
			{"vanya", "Uncle Vanya", "Anton Tchékhov's country house drama about a seagull-less estate.", "", 2},
			{"cherry", "The Cherry Orchard", "An estate is sold. By Tchékhov.", "", 3},
			{"sisters", "Three Sisters", "Moscow, always Moscow. The seagull flies over.", "comedy", 4},
			{"apple", "apple Pie", "Nothing about birds.", "", 5},
			{"emile", "Émile et les Cœurs", "Une pièce française.", "", 6},
			{"lake", "Lake House", "The lake again, and a seagull.", "", 7},
		})
		tests := []struct {
			name string
			f    theater.ScriptFilter
			want []string
		}{
			{"word in title", theater.ScriptFilter{Query: "orchard"}, []string{"cherry"}},
			{"word in synopsis", theater.ScriptFilter{Query: "moscow"}, []string{"sisters"}},
			{"prefix of the last word", theater.ScriptFilter{Query: "seag"}, []string{"seagull", "lake", "sisters", "vanya"}},
			{"the last word is a prefix", theater.ScriptFilter{Query: "lake seag"}, []string{"lake", "seagull"}},
			{"only the last word is a prefix", theater.ScriptFilter{Query: "seag lake"}, []string{}},
			{"words in any order", theater.ScriptFilter{Query: "orchard cherry"}, []string{"cherry"}},
			{"every word must match", theater.ScriptFilter{Query: "cherry moscow"}, []string{}},
			{"accent-insensitive", theater.ScriptFilter{Query: "tchekhov"}, []string{"cherry", "vanya"}},
			{"accented query", theater.ScriptFilter{Query: "TCHÉKHOV"}, []string{"cherry", "vanya"}},
			{"ligature", theater.ScriptFilter{Query: "coeurs"}, []string{"emile"}},
			{"case-insensitive", theater.ScriptFilter{Query: "UNCLE vAnYa"}, []string{"vanya"}},
			// "'s" is the word "s", a prefix of "sold" too.
			{"apostrophe splits", theater.ScriptFilter{Query: "tchékhov's"}, []string{"cherry", "vanya"}},
			{"hyphen splits", theater.ScriptFilter{Query: "seagull-less"}, []string{"vanya"}},
			// Ranking: title matches (newest first), then synopsis-only.
			{"title above synopsis", theater.ScriptFilter{Query: "lake"}, []string{"lake", "seagull"}},
			{"sort newest overrides", theater.ScriptFilter{Query: "seagull", Sort: "newest"}, []string{"lake", "sisters", "vanya", "seagull"}},
			{"sort title overrides", theater.ScriptFilter{Query: "seagull", Sort: "title"}, []string{"lake", "seagull", "sisters", "vanya"}},
			{"with genre", theater.ScriptFilter{Query: "seagull", Genre: "comedy"}, []string{"sisters"}},
			{"with author", theater.ScriptFilter{Query: "seagull", AuthorID: author.ID, Limit: 1}, []string{"seagull"}},
			{"with another author", theater.ScriptFilter{Query: "seagull", AuthorID: theater.NewID()}, []string{}},
			{"no word at all finds nothing", theater.ScriptFilter{Query: "!!!"}, []string{}},
			{"no match", theater.ScriptFilter{Query: "zebra"}, []string{}},
			// Title order folds case and accents: apple, Émile, Lake, The …
			{"title order", theater.ScriptFilter{Sort: "title", Limit: 4}, []string{"apple", "emile", "lake", "cherry"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := mustList(t, st, tt.f)
				if got := keysOf(p.Items, ids); !slices.Equal(got, tt.want) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			})
		}

		// The index follows every write.
		ctx := ctxT(t)
		in := scriptInput("Ivanov")
		sc := mustScript(t, st, author.ID, in)
		if got := mustList(t, st, theater.ScriptFilter{Query: "ivanov"}); len(got.Items) != 1 || got.Items[0].ID != sc.ID {
			t.Fatalf("after create: %+v, want the new script", got)
		}
		in.Title = "Platonov"
		if _, err := st.UpdateScript(ctx, sc.ID, in); err != nil {
			t.Fatal(err)
		}
		if got := mustList(t, st, theater.ScriptFilter{Query: "platonov"}); len(got.Items) != 1 || got.Items[0].ID != sc.ID {
			t.Errorf("after update, new title: %+v, want the script", got)
		}
		// The synopsis still says "Ivanov" (scriptInput wrote it), the title not.
		if got := mustList(t, st, theater.ScriptFilter{Query: "ivanov"}); len(got.Items) != 1 || got.Total != 1 {
			t.Errorf("after update, old word in synopsis: %+v, want one synopsis match", got)
		}
		in.Synopsis = "Gone."
		if _, err := st.UpdateScript(ctx, sc.ID, in); err != nil {
			t.Fatal(err)
		}
		if got := mustList(t, st, theater.ScriptFilter{Query: "ivanov"}); len(got.Items) != 0 {
			t.Errorf("after update, old word gone: %+v, want nothing", got)
		}
		if err := st.DeleteScript(ctx, sc.ID); err != nil {
			t.Fatal(err)
		}
		if got := mustList(t, st, theater.ScriptFilter{Query: "platonov"}); len(got.Items) != 0 || got.Total != 0 {
			t.Errorf("after delete: %+v, want nothing", got)
		}
	})
}

// TestSearchSyntaxIsText: FTS5 and tsquery operators in q are words or
// separators, never syntax: no query is an error, and each finds exactly
// what its words alone find.
func TestSearchSyntaxIsText(t *testing.T) {
	queries := []string{
		`"`, `""`, `"the`, `the"`, `*`, `the*`, `*the`, `NEAR`, `NEAR(the sea)`, `NEAR/3`, `-the`, `the -sea`,
		`:`, `title:sea`, `{title}: sea`, `sea:*`, `(`, `(the`, `the)`, `^the`, `^`, `&`, `the & sea`, `|`, `the | sea`,
		`!`, `!sea`, `'`, `'sea'`, `o'neill`, `\`, `\'`, `the\`, `AND`, `OR`, `NOT`, `the AND`, `sea OR NOT`, `+`,
		`sea <-> the`, `sea:A`, `sea:*A`, `%`, `_`, `$1`, `?`, `;`, `--`, `'; DROP TABLE scripts; --`,
	}
	eachBackend(t, func(t *testing.T, st *Store) {
		author := mustUser(t, st, "syntax@example.org", theater.RolePlaywright)
		ids := seedKeyed(t, st, author, []catalogueRow{
			{"near", "Near the Sea", "NEAR and AND and OR and NOT are words here.", "", 1},
			{"oneill", "O'Neill: A Title (Part 1)", `Quotes " and * and ^ and \ too.`, "", 2},
			{"plain", "Plain", "Nothing to see.", "", 3},
		})
		for _, q := range queries {
			t.Run(q, func(t *testing.T) {
				p, err := st.ListScripts(ctxT(t), theater.ScriptFilter{Query: q})
				if err != nil {
					t.Fatalf("ListScripts(q=%q): %v", q, err)
				}
				words := strings.Join(searchTokens(q), " ")
				want := []string{}
				if words != "" {
					want = keysOf(mustList(t, st, theater.ScriptFilter{Query: words}).Items, ids)
				}
				if got := keysOf(p.Items, ids); !slices.Equal(got, want) {
					t.Errorf("q=%q found %v, want %v (what %q finds)", q, got, want, words)
				}
			})
		}
		if got := keysOf(mustList(t, st, theater.ScriptFilter{Query: "near"}).Items, ids); !slices.Equal(got, []string{"near"}) {
			t.Errorf("q=near found %v, want [near]", got)
		}
		if got := keysOf(mustList(t, st, theater.ScriptFilter{Query: "o'neill"}).Items, ids); !slices.Equal(got, []string{"oneill"}) {
			t.Errorf("q=o'neill found %v, want [oneill]", got)
		}
	})
}

// bulkScripts makes n scripts by author with distinct times, one minute
// apart from start, titled "<word> <i>" with a synopsis of common words.
func bulkScripts(author theater.User, n int, start time.Time, step time.Duration, word string) []theater.Script {
	genres := theater.Genres()
	out := make([]theater.Script, n)
	for i := range out {
		out[i] = theater.Script{ID: theater.NewID(), Title: fmt.Sprintf("%s %d", word, i), AuthorID: author.ID,
			Genre: genres[i%len(genres)], Synopsis: "A common synopsis for walking.", CastMin: 1, CastMax: 2,
			DurationMinutes: 60, CreatedAt: start.Add(time.Duration(i) * step)}
	}
	return out
}

// TestCursorWalkUnderInserts walks every page of 10,000 scripts in each
// order while other scripts are inserted at random places of the order,
// concurrently and between pages: every script that existed at the start
// is seen exactly once, and the walk ends.
func TestCursorWalkUnderInserts(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		// Four walks of 10,000 rows take a while under -race: more than ctxT's
		// 30 seconds for the writers, which run all along.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		author := mustUser(t, st, "walk@example.org", theater.RolePlaywright)
		start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		// Half of them share a millisecond in pairs, so ties are walked too.
		n := 10000
		if raceEnabled && st.dialect == sqliteDialect {
			// Under -race every FTS5 page costs ~100 times more, and a
			// walk of 10,000 took minutes; the walk is the same code at
			// any size, and the run without -race walks 10,000.
			n = 2000
		}
		seed := bulkScripts(author, n, start, 500*time.Microsecond, "Walk")
		for i := range seed {
			if i%2 == 1 { // "walk" in the synopsis only: the second bucket
				seed[i].Title = fmt.Sprintf("Other %d", i)
				seed[i].Synopsis = "A walk."
			}
		}
		seedCatalogue(t, st, seed)
		filters := []theater.ScriptFilter{
			{Limit: 100},
			{Limit: 100, Sort: theater.SortTitle},
			{Limit: 100, Query: "walk"},                          // relevance: title matches, then synopsis only
			{Limit: 97, Query: "walk", Sort: theater.SortNewest}, // odd limit
		}
		var (
			mu      sync.Mutex
			stopped bool
			wg      sync.WaitGroup
		)
		// A concurrent writer: new scripts at random times inside the
		// walked range, and with titles that sort among the seeds.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				mu.Lock()
				s := stopped
				mu.Unlock()
				if s {
					return
				}
				extra := bulkScripts(author, 3, start.Add(time.Duration(i*7919%(n/2))*time.Millisecond+250*time.Microsecond), time.Second, "Walk common")
				if err := st.CreateScripts(ctx, extra); err != nil {
					t.Errorf("concurrent insert: %v", err)
					return
				}
				time.Sleep(5 * time.Millisecond) // leave the two cores to the walk mostly
			}
		}()
		defer func() {
			mu.Lock()
			stopped = true
			mu.Unlock()
			wg.Wait()
		}()
		for _, f := range filters {
			t.Run(fmt.Sprintf("%+v", f), func(t *testing.T) {
				want := map[string]bool{}
				for _, sc := range seed {
					if f.Genre == "" || sc.Genre == f.Genre {
						want[sc.ID] = true
					}
				}
				seen := map[string]int{}
				cur := f
				for pages := 0; ; pages++ {
					if pages > 1000 {
						t.Fatalf("walk did not end after %d pages", pages)
					}
					p := mustList(t, st, cur)
					for _, it := range p.Items {
						seen[it.ID]++
					}
					// Deterministic inserts between pages too, around the
					// page's last row.
					if len(p.Items) > 0 {
						last := p.Items[len(p.Items)-1]
						extra := bulkScripts(author, 2, last.CreatedAt, 0, "Walk common")
						if err := st.CreateScripts(ctx, extra); err != nil {
							t.Fatal(err)
						}
					}
					if p.NextCursor == "" {
						break
					}
					cur.Cursor = p.NextCursor
				}
				for id := range want {
					if seen[id] != 1 {
						t.Fatalf("seed script %s seen %d times, want once", id, seen[id])
					}
				}
				for id, n := range seen {
					if n != 1 {
						t.Fatalf("script %s seen %d times", id, n)
					}
				}
			})
		}
	})
}

func TestListPagesAndCursors(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		author := mustUser(t, st, "pages@example.org", theater.RolePlaywright)
		seedCatalogue(t, st, bulkScripts(author, 250, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Minute, "Page"))
		for _, f := range []theater.ScriptFilter{{Limit: 10}, {Limit: 10, Sort: "title"}, {Limit: 10, Query: "synopsis"}, {Limit: 10, Query: "page"}} {
			p1 := mustList(t, st, f)
			if p1.Total != 250 || !p1.TotalExact || p1.NextCursor == "" {
				t.Fatalf("page 1 of %+v: total %d exact %v cursor %q", f, p1.Total, p1.TotalExact, p1.NextCursor)
			}
			// page=N and N-1 cursors reach the same rows.
			f2 := f
			f2.Page = 2
			p2 := mustList(t, st, f2)
			fc := f
			fc.Cursor = p1.NextCursor
			c2 := mustList(t, st, fc)
			if !slices.Equal(ids(p2.Items), ids(c2.Items)) || p2.NextCursor != c2.NextCursor {
				t.Errorf("%+v: page=2 and the cursor of page 1 differ", f)
			}
			// The last page has no cursor.
			f25 := f
			f25.Page = 25
			if last := mustList(t, st, f25); len(last.Items) != 10 || last.NextCursor != "" {
				t.Errorf("%+v: last page has %d items, cursor %q", f, len(last.Items), last.NextCursor)
			}
		}
	})
}

func ids(items []theater.Script) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func TestCursorRejected(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		author := mustUser(t, st, "cursor@example.org", theater.RolePlaywright)
		seedCatalogue(t, st, bulkScripts(author, 30, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Minute, "Cursor"))
		f := theater.ScriptFilter{Limit: 5, Query: "cursor"}
		good := mustList(t, st, f).NextCursor
		ft := theater.ScriptFilter{Limit: 5, Sort: "title"}
		goodTitle := mustList(t, st, ft).NextCursor
		raw, _ := base64.RawURLEncoding.DecodeString(good)
		flip := func(b []byte, i int) string {
			b = slices.Clone(b)
			b[i] ^= 1
			return base64.RawURLEncoding.EncodeToString(b)
		}
		// A forged cursor with a valid check but nonsense inside.
		forge := func(f theater.ScriptFilter, payload []byte) string {
			return base64.RawURLEncoding.EncodeToString(append(payload, cursorCheck(f, payload)...))
		}
		badID := slices.Clone(raw[:len(raw)-8])
		copy(badID[11:], "AAAAAAAAAAAAAAAA")
		tests := []struct {
			name, cursor string
			f            theater.ScriptFilter
		}{
			{"garbage", "not a cursor!", f},
			{"padding", good + "=", f},
			{"standard base64", strings.NewReplacer("-", "+", "_", "/").Replace(good) + "+/", f},
			{"truncated", good[:len(good)-3], f},
			{"one byte", "AQ", f},
			{"empty payload", "", theater.ScriptFilter{Limit: 5, Query: "cursor", Cursor: "A"}},
			{"flipped version", flip(raw, 0), f},
			{"flipped time", flip(raw, 5), f},
			{"flipped id", flip(raw, 20), f},
			{"flipped check", flip(raw, len(raw)-1), f},
			{"other query", good, theater.ScriptFilter{Limit: 5, Query: "other"}},
			{"other limit", good, theater.ScriptFilter{Limit: 6, Query: "cursor"}},
			{"other sort", good, theater.ScriptFilter{Limit: 5, Query: "cursor", Sort: "newest"}},
			{"other genre", good, theater.ScriptFilter{Limit: 5, Query: "cursor", Genre: "drama"}},
			{"other author", good, theater.ScriptFilter{Limit: 5, Query: "cursor", AuthorID: author.ID}},
			{"title cursor for newest", goodTitle, theater.ScriptFilter{Limit: 5}},
			{"forged bucket", forge(f, append([]byte{1, 2, 9}, raw[3:len(raw)-8]...)), f},
			{"forged id", forge(f, badID), f},
			{"forged version", forge(f, append([]byte{2}, raw[1:len(raw)-8]...)), f},
			{"forged extra byte", forge(f, append(slices.Clone(raw[:len(raw)-8]), 0)), f},
			{"forged title length", forge(ft, []byte("\x01\x01\x00abcdefgh234567ab\x05ab")), ft},
			{"forged title utf-8", forge(ft, []byte("\x01\x01\x00abcdefgh234567ab\x02\xff\xfe")), ft},
			{"too long", strings.Repeat("A", theater.MaxCursorLen+1), f},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				fc := tt.f
				if tt.cursor != "" {
					fc.Cursor = tt.cursor
				}
				_, err := st.ListScripts(ctxT(t), fc)
				wantCode(t, err, theater.EINVALID)
				if got := theater.ErrorField(err); got != "cursor" {
					t.Errorf("field = %q, want cursor (%v)", got, err)
				}
			})
		}
		// A cursor with page is refused; the good cursors work.
		bad := f
		bad.Cursor, bad.Page = good, 2
		_, err := st.ListScripts(ctxT(t), bad)
		wantCode(t, err, theater.EINVALID)
		f.Cursor, ft.Cursor = good, goodTitle
		mustList(t, st, f)
		mustList(t, st, ft)
	})
}

func TestTotalCapped(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		author := mustUser(t, st, "total@example.org", theater.RolePlaywright)
		start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		seedCatalogue(t, st, bulkScripts(author, theater.MaxExactTotal, start, time.Second, "Total"))
		for _, f := range []theater.ScriptFilter{{}, {Query: "total"}, {AuthorID: author.ID}} {
			if p := mustList(t, st, f); p.Total != theater.MaxExactTotal || !p.TotalExact {
				t.Errorf("%+v at 10,000: total %d exact %v, want 10000 exact", f, p.Total, p.TotalExact)
			}
		}
		seedCatalogue(t, st, bulkScripts(author, 1, start.Add(-time.Hour), 0, "Total"))
		for _, f := range []theater.ScriptFilter{{}, {Query: "total"}, {Query: "tot", Sort: "title"}, {AuthorID: author.ID}} {
			if p := mustList(t, st, f); p.Total != theater.MaxExactTotal || p.TotalExact || len(p.Items) != 20 {
				t.Errorf("%+v at 10,001: total %d exact %v items %d, want 10000 inexact, 20 items", f, p.Total, p.TotalExact, len(p.Items))
			}
		}
		// A deep page (by cursor) past the 10,000th row still works.
		f := theater.ScriptFilter{Limit: 100, Page: theater.MaxPage}
		p := mustList(t, st, f)
		f.Page, f.Cursor = 0, p.NextCursor
		if next := mustList(t, st, f); len(next.Items) != 1 || next.NextCursor != "" {
			t.Errorf("page 101 by cursor: %d items, cursor %q, want the 10,001st alone", len(next.Items), next.NextCursor)
		}
	})
}

// TestBackfillSearch: scripts stored before migration 0002 (search columns
// NULL) are indexed when a store opens.
func TestBackfillSearch(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := ctxT(t)
		author := mustUser(t, st, "old@example.org", theater.RolePlaywright)
		seedCatalogue(t, st, bulkScripts(author, 1200, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Millisecond, "Ancient"))
		forget := []string{`UPDATE scripts SET all_tsv = NULL, title_tsv = NULL, title_key = NULL`}
		if st.dialect == sqliteDialect {
			forget = []string{`DELETE FROM scripts_fts`, `UPDATE scripts SET search_rowid = NULL, title_key = NULL`}
		}
		for _, q := range forget {
			if _, err := st.db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if p := mustList(t, st, theater.ScriptFilter{Query: "ancient"}); p.Total != 0 {
			t.Fatalf("before backfill: total %d", p.Total)
		}
		if err := st.backfillSearch(ctx); err != nil {
			t.Fatal(err)
		}
		if p := mustList(t, st, theater.ScriptFilter{Query: "ancient"}); p.Total != 1200 {
			t.Errorf("after backfill: total %d, want 1200", p.Total)
		}
		if p := mustList(t, st, theater.ScriptFilter{Sort: "title", Limit: 2}); len(p.Items) != 2 || p.Items[0].Title != "Ancient 0" || p.Items[1].Title != "Ancient 1" {
			t.Errorf("after backfill, title order: %v", ids(p.Items))
		}
	})
}

// TestSearchWords: a prefix of four or more letters is expanded from
// search_words, which every write keeps (create, update, backfill) and
// migration 0003 builds from an index made before it, title and synopsis
// words only.
func TestSearchWords(t *testing.T) {
	ctx := ctxT(t)
	path := filepath.Join(t.TempDir(), "theater.db")
	st := openTestSQLiteURL(t, "sqlite:"+path)
	author := mustUser(t, st, "words@example.org", theater.RolePlaywright)
	sc := mustScript(t, st, author.ID, scriptInput("Lighthouse Keepers"))
	in := scriptInput("Quartermaster")
	in.Synopsis = "Nightingales over the harbour."
	if _, err := st.UpdateScript(ctx, sc.ID, in); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int{"quart": 1, "nightin": 1, "ligh": 0} {
		// "lighthouse" stays in search_words, an alternative that matches nothing.
		if p := mustList(t, st, theater.ScriptFilter{Query: q}); p.Total != want {
			t.Errorf("q=%s after the update: total %d, want %d", q, p.Total, want)
		}
	}

	// Back to the schema of migration 0002, as a database made before 0003.
	for _, q := range []string{`DROP TABLE search_words`, `DELETE FROM schema_migrations WHERE version = 3`,
		`CREATE VIRTUAL TABLE scripts_fts_vocab USING fts5vocab(scripts_fts, 'row')`} {
		if _, err := st.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	st.Close()
	st = openTestSQLiteURL(t, "sqlite:"+path)
	if p := mustList(t, st, theater.ScriptFilter{Query: "nightin"}); p.Total != 1 {
		t.Errorf("q=nightin after migration 0003: total %d, want 1", p.Total)
	}
	var words []string
	rows, err := st.db.QueryContext(ctx, `SELECT word FROM search_words ORDER BY word`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var w string
		if err := rows.Scan(&w); err != nil {
			t.Fatal(err)
		}
		words = append(words, w)
	}
	if slices.Contains(words, strings.ToLower(author.ID)) || !slices.Contains(words, "quartermaster") || !slices.Contains(words, "harbour") {
		t.Errorf("search_words after migration 0003 = %v: want the title and synopsis words, no author id", words)
	}
}
