package sqlstore

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

func TestOpenRejectsBadURLs(t *testing.T) {
	tests := []struct {
		name, url string
	}{
		{"empty", ""},
		{"mysql", "mysql://root@localhost/test"},
		{"bare path", "./data/theater.db"},
		{"sqlite no path", "sqlite:"},
		{"sqlite unknown param", "sqlite:/tmp/x.db?cache=shared"},
		{"sqlite bad busy_timeout", "sqlite:/tmp/x.db?busy_timeout=soon"},
		{"postgres garbage", "postgres://user:secret@[::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Open(ctxT(t), tt.url)
			if err == nil {
				st.Close()
				t.Fatalf("Open(%q) = nil error, want EINVALID", tt.url)
			}
			if got := theater.ErrorCode(err); got != theater.EINVALID {
				t.Fatalf("Open(%q) error %v: got code %q, want %q", tt.url, err, got, theater.EINVALID)
			}
			if msg := theater.ErrorMessage(err); !strings.Contains(msg, "DATABASE_URL") {
				t.Errorf("message %q does not name DATABASE_URL", msg)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestOpenPostgresUnreachable(t *testing.T) {
	// Port 1 on loopback: nothing listens, the connection is refused at once.
	st, err := Open(ctxT(t), "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	if err == nil {
		st.Close()
		t.Fatal("Open(unreachable) = nil error, want EUNAVAILABLE")
	}
	wantCode(t, err, theater.EUNAVAILABLE)
}

func TestOpenSQLiteCreatesAndMigratesOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	u := "sqlite:" + filepath.Join(dir, "theater.db")
	st := openTestSQLiteURL(t, u)
	alice := mustUser(t, st, "alice@example.org", theater.RoleProducer)
	st.Close()

	// A second Open finds the schema current and the data intact.
	st2 := openTestSQLiteURL(t, u)
	var n int
	if err := st2.db.QueryRowContext(ctxT(t), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	ms, err := migrations(sqliteDialect)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(ms))
	}
	got, err := st2.UserByID(ctxT(t), alice.ID)
	if err != nil || got != alice {
		t.Errorf("UserByID after reopen = %+v, %v, want %+v", got, err, alice)
	}
	var mode string
	if err := st2.db.QueryRowContext(ctxT(t), `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v, want wal", mode, err)
	}
	var fk int
	if err := st2.db.QueryRowContext(ctxT(t), `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v, want 1", fk, err)
	}
}

func TestOpenSQLiteMemory(t *testing.T) {
	st := openTestSQLiteURL(t, "sqlite::memory:")
	u := mustUser(t, st, "mem@example.org", theater.RolePlaywright)
	mustScript(t, st, u.ID, scriptInput("In Memory"))
	if p, err := st.ListScripts(ctxT(t), theater.ScriptFilter{}); err != nil || p.Total != 1 {
		t.Errorf("ListScripts = total %d, %v, want 1, nil", p.Total, err)
	}
}

func TestOpenPostgresTwiceMigratesOnce(t *testing.T) {
	st := openTestPostgres(t)
	var schema string
	if err := st.db.QueryRowContext(ctxT(t), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	st2, err := Open(ctxT(t), withSearchPath(t, testDatabaseURL(), schema))
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer st2.Close()
	var n int
	if err := st2.db.QueryRowContext(ctxT(t), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if ms, _ := migrations(postgresDialect); n != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(ms))
	}
}

func TestMigrationsInStep(t *testing.T) {
	names := func(d dialect) []string {
		var out []string
		entries, err := fs.ReadDir(migrationFiles, "migrations/"+string(d))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	if got, want := names(sqliteDialect), names(postgresDialect); !slices.Equal(got, want) {
		t.Errorf("sqlite migrations %v, postgres migrations %v: want the same files", got, want)
	}
}

func TestUsers(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := ctxT(t)
		created, err := st.CreateUser(ctx, theater.NewUser{Email: "  Ann.Lee@Example.ORG ", Password: "long enough", Name: " Ann Lee ", Role: theater.RolePlaywright}, "$argon2id$hash")
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		if !theater.ValidID(created.ID) || created.Email != "ann.lee@example.org" || created.Name != "Ann Lee" ||
			created.CreatedAt.IsZero() || created.CreatedAt.Location() != time.UTC {
			t.Errorf("created = %+v, want a valid id, normalised email and name, a UTC timestamp", created)
		}

		got, err := st.UserByID(ctx, created.ID)
		if err != nil || got != created {
			t.Errorf("UserByID = %+v, %v, want %+v", got, err, created)
		}

		for _, email := range []string{"ann.lee@example.org", "ANN.LEE@EXAMPLE.ORG", " Ann.Lee@example.org\t"} {
			got, hash, err := st.UserByEmail(ctx, email)
			if err != nil || got != created || hash != "$argon2id$hash" {
				t.Errorf("UserByEmail(%q) = %+v, %q, %v, want %+v, the stored hash", email, got, hash, err, created)
			}
		}

		// Emails are unique compared case-insensitively.
		_, err = st.CreateUser(ctx, theater.NewUser{Email: "ANN.LEE@example.org", Password: "other password", Name: "Impostor", Role: theater.RoleProducer}, "$argon2id$x")
		wantCode(t, err, theater.ECONFLICT)
		if f := theater.ErrorField(err); f != "email" {
			t.Errorf("conflict field = %q, want email", f)
		}

		// The store validates too, and allows admins (trusted path).
		_, err = st.CreateUser(ctx, theater.NewUser{Email: "nul@example.org", Password: "long enough", Name: "N\x00UL", Role: theater.RoleProducer}, "h")
		wantCode(t, err, theater.EINVALID)
		admin, err := st.CreateUser(ctx, theater.NewUser{Email: "root@example.org", Password: "long enough", Name: "Root", Role: theater.RoleAdmin}, "h")
		if err != nil || admin.Role != theater.RoleAdmin {
			t.Errorf("CreateUser(admin) = %+v, %v, want an admin", admin, err)
		}

		notFound := []struct {
			name string
			call func() error
		}{
			{"by id unknown", func() error { _, err := st.UserByID(ctx, theater.NewID()); return err }},
			{"by id malformed", func() error { _, err := st.UserByID(ctx, "'; DROP TABLE users;--"); return err }},
			{"by id empty", func() error { _, err := st.UserByID(ctx, ""); return err }},
			{"by email unknown", func() error { _, _, err := st.UserByEmail(ctx, "nobody@example.org"); return err }},
			{"by email NUL", func() error { _, _, err := st.UserByEmail(ctx, "ann\x00@example.org"); return err }},
			{"by email bad utf8", func() error { _, _, err := st.UserByEmail(ctx, "ann\xff@example.org"); return err }},
			{"by email injection", func() error { _, _, err := st.UserByEmail(ctx, "' OR '1'='1"); return err }},
			{"by email huge", func() error { _, _, err := st.UserByEmail(ctx, strings.Repeat("a", 10000)); return err }},
		}
		for _, tt := range notFound {
			t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), theater.ENOTFOUND) })
		}
	})
}

func TestScriptCRUD(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := ctxT(t)
		author := mustUser(t, st, "author@example.org", theater.RolePlaywright)
		in := scriptInput("  The Cherry Orchard ")
		in.Genre = "Comedy"
		in.Language = ""
		created := mustScript(t, st, author.ID, in)
		want := theater.Script{ID: created.ID, Title: "The Cherry Orchard", AuthorID: author.ID, AuthorName: author.Name,
			Genre: "comedy", Synopsis: "A synopsis of   The Cherry Orchard .", CastMin: 2, CastMax: 6, DurationMinutes: 90,
			Language: "en", CreatedAt: created.CreatedAt, UpdatedAt: created.CreatedAt}
		if created != want {
			t.Fatalf("CreateScript = %+v, want %+v", created, want)
		}
		got, err := st.ScriptByID(ctx, created.ID)
		if err != nil || got != created {
			t.Fatalf("ScriptByID = %+v, %v, want %+v", got, err, created)
		}

		time.Sleep(5 * time.Millisecond) // so UpdatedAt visibly moves at ms precision
		upd := scriptInput("The Cherry Orchard (revised)")
		upd.CastMax = 14
		updated, err := st.UpdateScript(ctx, created.ID, upd)
		if err != nil {
			t.Fatalf("UpdateScript: %v", err)
		}
		if updated.Title != upd.Title || updated.CastMax != 14 || updated.AuthorID != author.ID ||
			updated.AuthorName != author.Name || updated.CreatedAt != created.CreatedAt || !updated.UpdatedAt.After(created.UpdatedAt) {
			t.Errorf("UpdateScript = %+v, want new fields, same author and createdAt, later updatedAt (was %v)", updated, created.UpdatedAt)
		}
		if got, _ := st.ScriptByID(ctx, created.ID); got != updated {
			t.Errorf("ScriptByID after update = %+v, want %+v", got, updated)
		}

		bad := upd
		bad.CastMin = 0
		_, err = st.UpdateScript(ctx, created.ID, bad)
		wantCode(t, err, theater.EINVALID)
		_, err = st.CreateScript(ctx, author.ID, bad)
		wantCode(t, err, theater.EINVALID)

		if err := st.DeleteScript(ctx, created.ID); err != nil {
			t.Fatalf("DeleteScript: %v", err)
		}
		_, err = st.ScriptByID(ctx, created.ID)
		wantCode(t, err, theater.ENOTFOUND)
		wantCode(t, st.DeleteScript(ctx, created.ID), theater.ENOTFOUND)

		missing := []struct {
			name string
			call func() error
		}{
			{"get unknown", func() error { _, err := st.ScriptByID(ctx, theater.NewID()); return err }},
			{"get malformed", func() error { _, err := st.ScriptByID(ctx, "x' OR 1=1 --"); return err }},
			{"update unknown", func() error { _, err := st.UpdateScript(ctx, theater.NewID(), upd); return err }},
			{"update malformed", func() error { _, err := st.UpdateScript(ctx, "../etc", upd); return err }},
			{"delete malformed", func() error { return st.DeleteScript(ctx, "%") }},
			{"create unknown author", func() error { _, err := st.CreateScript(ctx, theater.NewID(), upd); return err }},
			{"create malformed author", func() error { _, err := st.CreateScript(ctx, "", upd); return err }},
		}
		for _, tt := range missing {
			t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), theater.ENOTFOUND) })
		}
	})
}

func TestHostileStringsRoundTrip(t *testing.T) {
	hostile := []string{
		`'; DROP TABLE scripts; --`,
		`Robert'); DROP TABLE users;--`,
		`" OR ""="`,
		`\'\"\\ backslashes \x00 as text`,
		`100% _wild_ [cards] *glob* {tag}`,
		"Ελληνικά, 日本語, العربية, עברית, emoji 🎭🎟️, combining é",
		"$1 $2 ? :name @name",
	}
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := ctxT(t)
		author := mustUser(t, st, "o'hara@example.org", theater.RolePlaywright)
		for i, s := range hostile {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				in := scriptInput(s)
				in.Synopsis = s + "\n" + s
				sc := mustScript(t, st, author.ID, in)
				got, err := st.ScriptByID(ctx, sc.ID)
				if err != nil || got.Title != s || got.Synopsis != s+"\n"+s {
					t.Errorf("round trip of %q = %q / %q, %v", s, got.Title, got.Synopsis, err)
				}
				p, err := st.ListScripts(ctx, theater.ScriptFilter{Query: s})
				items, total := p.Items, p.Total
				if err != nil || total < 1 || !slices.ContainsFunc(items, func(x theater.Script) bool { return x.ID == sc.ID }) {
					t.Errorf("ListScripts(q=%q) = %d items, total %d, %v, want it to find the script", s, len(items), total, err)
				}
			})
		}
		// NUL never reaches the database: validation rejects it.
		in := scriptInput("with \x00 NUL")
		_, err := st.CreateScript(ctx, author.ID, in)
		wantCode(t, err, theater.EINVALID)
		_, err = st.ListScripts(ctx, theater.ScriptFilter{Query: "a\x00b"})
		wantCode(t, err, theater.EINVALID)
		// And the tables are all still there.
		if p, err := st.ListScripts(ctx, theater.ScriptFilter{}); err != nil || p.Total != len(hostile) {
			t.Errorf("ListScripts = total %d, %v, want %d", p.Total, err, len(hostile))
		}
	})
}

// seedCatalogue inserts scripts with known fields and distinct, known
// creation times through CreateScripts (so ordering is testable).
func seedCatalogue(tb testing.TB, st *Store, scripts []theater.Script) {
	tb.Helper()
	// Setup, not a bound under test: 10,000 rows with the race detector on
	// a loaded 2-core box took 31 s, past ctxT's 30 s.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := st.CreateScripts(ctx, scripts); err != nil {
		tb.Fatalf("CreateScripts: %v", err)
	}
}

func TestListScripts(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := ctxT(t)
		ann := mustUser(t, st, "ann@example.org", theater.RolePlaywright)
		bob := mustUser(t, st, "bob@example.org", theater.RolePlaywright)
		base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		type row struct {
			key, title, genre, synopsis string
			author                      theater.User
			minute                      int
		}
		rows := []row{
			{"a", "Summer Comedy", "comedy", "Laughs all the way.", ann, 1},
			{"b", "Winter Drama", "drama", "A 100% true story.", ann, 2},
			{"c", "Autumn Drama", "drama", "Snake_case and more.", bob, 3},
			{"d", "ÉTÉ Indien", "drama", "Une pièce en un acte.", bob, 4},
			{"e", "Spring Farce", "farce", `Back\slash and 1000 doors.`, ann, 5},
			{"f", "Tie One", "comedy", "Same minute as g.", bob, 6},
			{"g", "Tie Two", "comedy", "Same minute as f.", bob, 6},
		}
		ids := map[string]string{}
		var scripts []theater.Script
		for _, r := range rows {
			id := theater.NewID()
			ids[r.key] = id
			scripts = append(scripts, theater.Script{ID: id, Title: r.title, AuthorID: r.author.ID, Genre: r.genre,
				Synopsis: r.synopsis, CastMin: 1, CastMax: 4, DurationMinutes: 60, Language: "en",
				CreatedAt: base.Add(time.Duration(r.minute) * time.Minute)})
		}
		seedCatalogue(t, st, scripts)
		// Newest first; f and g share a creation time and are ordered by id.
		fg := []string{"f", "g"}
		if ids["g"] < ids["f"] {
			fg = []string{"g", "f"}
		}
		all := append(slices.Clone(fg), "e", "d", "c", "b", "a")

		tests := []struct {
			name      string
			f         theater.ScriptFilter
			wantKeys  []string
			wantTotal int
		}{
			{"all", theater.ScriptFilter{}, all, 7},
			{"page 1 of 3", theater.ScriptFilter{Limit: 3}, all[:3], 7},
			{"page 2 of 3", theater.ScriptFilter{Limit: 3, Page: 2}, all[3:6], 7},
			{"page 3 of 3", theater.ScriptFilter{Limit: 3, Page: 3}, all[6:], 7},
			{"past the end", theater.ScriptFilter{Limit: 3, Page: 4}, nil, 7},
			{"genre", theater.ScriptFilter{Genre: "drama"}, []string{"d", "c", "b"}, 3},
			{"genre any case", theater.ScriptFilter{Genre: "DRAMA"}, []string{"d", "c", "b"}, 3},
			{"genre none", theater.ScriptFilter{Genre: "opera"}, nil, 0},
			{"author", theater.ScriptFilter{AuthorID: ann.ID}, []string{"e", "b", "a"}, 3},
			{"author unknown", theater.ScriptFilter{AuthorID: theater.NewID()}, nil, 0},
			{"genre and author", theater.ScriptFilter{Genre: "drama", AuthorID: bob.ID}, []string{"d", "c"}, 2},
			{"q title", theater.ScriptFilter{Query: "drama"}, []string{"c", "b"}, 2},
			{"q case-insensitive", theater.ScriptFilter{Query: "sUmMeR"}, []string{"a"}, 1},
			{"q unicode case", theater.ScriptFilter{Query: "été"}, []string{"d"}, 1},
			{"q synopsis", theater.ScriptFilter{Query: "pièce"}, []string{"d"}, 1},
			// Punctuation separates words: "100%" is the word 100, and as the
			// last word also a prefix (1000). "%" alone has no word: nothing.
			{"q percent literal", theater.ScriptFilter{Query: "100%"}, []string{"e", "b"}, 2},
			{"q percent alone", theater.ScriptFilter{Query: "%"}, nil, 0},
			{"q underscore literal", theater.ScriptFilter{Query: "snake_case"}, []string{"c"}, 1},
			{"q underscore alone", theater.ScriptFilter{Query: "_"}, nil, 0},
			{"q backslash literal", theater.ScriptFilter{Query: `back\slash`}, []string{"e"}, 1},
			{"q no match", theater.ScriptFilter{Query: "zebra"}, nil, 0},
			// Every word must match, in the title or the synopsis.
			{"q across title and synopsis", theater.ScriptFilter{Query: "laughs comedy"}, []string{"a"}, 1},
			{"q every word must match", theater.ScriptFilter{Query: "comedy zebra"}, nil, 0},
			{"q with genre and paging", theater.ScriptFilter{Query: "tie", Genre: "comedy", Limit: 1, Page: 2}, fg[1:], 2},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p, err := st.ListScripts(ctx, tt.f)
				items, total := p.Items, p.Total
				if err != nil {
					t.Fatalf("ListScripts(%+v): %v", tt.f, err)
				}
				if items == nil {
					t.Errorf("items = nil, want an empty slice (JSON [])")
				}
				var got []string
				for _, it := range items {
					for k, id := range ids {
						if id == it.ID {
							got = append(got, k)
						}
					}
				}
				if !slices.Equal(got, tt.wantKeys) || total != tt.wantTotal {
					t.Errorf("got %v total %d, want %v total %d", got, total, tt.wantKeys, tt.wantTotal)
				}
			})
		}

		badFilters := []theater.ScriptFilter{{Page: -1}, {Limit: 101}, {Genre: "unknown"}, {AuthorID: "bad"}, {Query: strings.Repeat("x", 201)}}
		for _, f := range badFilters {
			_, err := st.ListScripts(ctx, f)
			wantCode(t, err, theater.EINVALID)
		}

		byAnn, err := st.ListScripts(ctx, theater.ScriptFilter{AuthorID: ann.ID})
		if err != nil || len(byAnn.Items) != 3 || byAnn.Items[0].ID != ids["e"] || byAnn.Items[0].AuthorName != ann.Name {
			t.Fatalf("ListScripts(author ann) = %+v, %v, want 3 newest first with the author's name", byAnn, err)
		}
		if got, want := byAnn.Items[0].CreatedAt, base.Add(5*time.Minute); got != want {
			t.Errorf("CreatedAt = %v, want %v", got, want)
		}
	})
}

func TestCreateScriptsBulk(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := ctxT(t)
		author := mustUser(t, st, "bulk@example.org", theater.RolePlaywright)
		mk := func(n int) []theater.Script {
			out := make([]theater.Script, n)
			for i := range out {
				out[i] = theater.Script{ID: theater.NewID(), Title: fmt.Sprintf("Bulk %d", i), AuthorID: author.ID,
					Genre: "drama", CastMin: 1, CastMax: 2, DurationMinutes: 30}
			}
			return out
		}
		batch := mk(2*bulkRows + 7) // spans several INSERTs
		if err := st.CreateScripts(ctx, batch); err != nil {
			t.Fatalf("CreateScripts: %v", err)
		}
		if p, _ := st.ListScripts(ctx, theater.ScriptFilter{}); p.Total != len(batch) {
			t.Errorf("total = %d, want %d", p.Total, len(batch))
		}

		// All or nothing: a duplicate id in the last batch leaves no trace.
		again := mk(bulkRows + 1)
		again[bulkRows].ID = batch[0].ID
		wantCode(t, st.CreateScripts(ctx, again), theater.ECONFLICT)
		if p, _ := st.ListScripts(ctx, theater.ScriptFilter{}); p.Total != len(batch) {
			t.Errorf("after a failed batch total = %d, want %d", p.Total, len(batch))
		}

		orphan := mk(1)
		orphan[0].AuthorID = theater.NewID()
		wantCode(t, st.CreateScripts(ctx, orphan), theater.ENOTFOUND)
		invalid := mk(1)
		invalid[0].Title = ""
		wantCode(t, st.CreateScripts(ctx, invalid), theater.EINVALID)
		badID := mk(1)
		badID[0].ID = "nope"
		wantCode(t, st.CreateScripts(ctx, badID), theater.EINVALID)
	})
}

func TestLicenses(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := ctxT(t)
		author := mustUser(t, st, "writer@example.org", theater.RolePlaywright)
		producer := mustUser(t, st, "producer@example.org", theater.RoleProducer)
		other := mustUser(t, st, "other@example.org", theater.RoleProducer)
		sc := mustScript(t, st, author.ID, scriptInput("Licensed"))

		perusal, err := st.CreateLicense(ctx, sc.ID, producer.ID, theater.LicenseInput{Type: theater.LicensePerusal})
		if err != nil {
			t.Fatalf("CreateLicense(perusal): %v", err)
		}
		if perusal.Performances != 0 || !perusal.EndsAt.Equal(perusal.StartsAt.Add(theater.PerusalPeriod)) || !theater.ValidID(perusal.ID) {
			t.Errorf("perusal = %+v, want 0 performances and the default period", perusal)
		}
		time.Sleep(2 * time.Millisecond) // distinct createdAt, so the order is by time
		start := time.Now().Add(24 * time.Hour).Truncate(time.Second)
		perf, err := st.CreateLicense(ctx, sc.ID, producer.ID, theater.LicenseInput{
			Type: theater.LicensePerformance, Performances: 4,
			StartsAt: start.In(time.FixedZone("X", -5*3600)), EndsAt: start.Add(30 * 24 * time.Hour)})
		if err != nil {
			t.Fatalf("CreateLicense(performance): %v", err)
		}
		if !perf.StartsAt.Equal(start) || perf.StartsAt.Location() != time.UTC {
			t.Errorf("StartsAt = %v, want %v in UTC", perf.StartsAt, start)
		}

		got, err := st.LicensesByUser(ctx, producer.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := []theater.License{perf, perusal}; !reflect.DeepEqual(got, want) {
			t.Errorf("LicensesByUser = %+v, want %+v", got, want)
		}
		if got, err := st.LicensesByUser(ctx, other.ID); err != nil || got == nil || len(got) != 0 {
			t.Errorf("LicensesByUser(other) = %v, %v, want []", got, err)
		}
		if got, err := st.LicensesByUser(ctx, "bad id"); err != nil || len(got) != 0 {
			t.Errorf("LicensesByUser(bad id) = %v, %v, want []", got, err)
		}

		okInput := theater.LicenseInput{Type: theater.LicensePerusal}
		errs := []struct {
			name, code, field string
			call              func() error
		}{
			{"script unknown", theater.ENOTFOUND, "scriptId", func() error {
				_, err := st.CreateLicense(ctx, theater.NewID(), producer.ID, okInput)
				return err
			}},
			{"script malformed", theater.ENOTFOUND, "scriptId", func() error {
				_, err := st.CreateLicense(ctx, "1; DELETE", producer.ID, okInput)
				return err
			}},
			{"user unknown", theater.ENOTFOUND, "userId", func() error {
				_, err := st.CreateLicense(ctx, sc.ID, theater.NewID(), okInput)
				return err
			}},
			{"performance without performances", theater.EINVALID, "performances", func() error {
				_, err := st.CreateLicense(ctx, sc.ID, producer.ID, theater.LicenseInput{Type: theater.LicensePerformance, EndsAt: time.Now().Add(time.Hour)})
				return err
			}},
			{"performance ended", theater.EINVALID, "endsAt", func() error {
				_, err := st.CreateLicense(ctx, sc.ID, producer.ID, theater.LicenseInput{Type: theater.LicensePerformance, Performances: 1,
					StartsAt: time.Now().Add(-48 * time.Hour), EndsAt: time.Now().Add(-time.Hour)})
				return err
			}},
			{"delete licensed script", theater.ECONFLICT, "", func() error { return st.DeleteScript(ctx, sc.ID) }},
		}
		for _, tt := range errs {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.call()
				wantCode(t, err, tt.code)
				if f := theater.ErrorField(err); f != tt.field {
					t.Errorf("field = %q, want %q", f, tt.field)
				}
			})
		}
		if _, err := st.ScriptByID(ctx, sc.ID); err != nil {
			t.Errorf("licensed script gone after refused delete: %v", err)
		}
	})
}
