package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// bulkRows is how many scripts one INSERT carries: 12 parameters each keeps
// a statement at 2,400 parameters, far under both databases' limits (SQLite
// 32,766, PostgreSQL 65,535), while cutting round trips a hundredfold.
const bulkRows = 200

// CreateScripts inserts many complete scripts (ids, authors and timestamps
// chosen by the caller, as for importing a catalogue) in one transaction:
// all of them or none. Each is validated like CreateScript's input; a
// malformed id is EINVALID on "id", a zero CreatedAt means now, a zero
// UpdatedAt means CreatedAt. An id already taken is ECONFLICT, an unknown
// author ENOTFOUND on "authorId". AuthorName is ignored: it is always read
// from the user.
func (s *Store) CreateScripts(ctx context.Context, scripts []theater.Script) error {
	now := s.now()
	rows := make([]theater.Script, len(scripts))
	for i, sc := range scripts {
		in := theater.ScriptInput{Title: sc.Title, Genre: sc.Genre, Synopsis: sc.Synopsis, CastMin: sc.CastMin,
			CastMax: sc.CastMax, DurationMinutes: sc.DurationMinutes, Language: sc.Language}
		if err := in.Validate(); err != nil {
			return fmt.Errorf("script %d: %w", i, err)
		}
		if !theater.ValidID(sc.ID) {
			return fmt.Errorf("script %d: %w", i, theater.Invalid("id", "must be an id made by theater.NewID"))
		}
		if !theater.ValidID(sc.AuthorID) {
			return fmt.Errorf("script %d: %w", i, &theater.Error{Code: theater.ENOTFOUND, Field: "authorId", Message: "authorId: no such user"})
		}
		created := now
		if !sc.CreatedAt.IsZero() {
			created = theater.Timestamp(sc.CreatedAt)
		}
		updated := created
		if !sc.UpdatedAt.IsZero() {
			updated = theater.Timestamp(sc.UpdatedAt)
		}
		rows[i] = scriptFromInput(sc.ID, sc.AuthorID, in, created)
		rows[i].UpdatedAt = updated
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for start := 0; start < len(rows); start += bulkRows {
			batch := rows[start:min(start+bulkRows, len(rows))]
			var b strings.Builder
			b.WriteString(`INSERT INTO scripts
	(id, title, author_id, genre, synopsis, cast_min, cast_max, duration_minutes, language, search_text, created_at, updated_at)
	VALUES `)
			args := make([]any, 0, len(batch)*12)
			for i, sc := range batch {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString("(")
				for j := 1; j <= 12; j++ {
					if j > 1 {
						b.WriteString(", ")
					}
					b.WriteString(s.placeholder(len(args) + j))
				}
				b.WriteString(")")
				args = append(args, sc.ID, sc.Title, sc.AuthorID, sc.Genre, sc.Synopsis, sc.CastMin, sc.CastMax,
					sc.DurationMinutes, sc.Language, searchText(sc.Title, sc.Synopsis),
					s.timeArg(sc.CreatedAt), s.timeArg(sc.UpdatedAt))
			}
			if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
				switch s.classify(err) {
				case kindUnique:
					return &theater.Error{Code: theater.ECONFLICT, Field: "id", Message: "id: a script with this id already exists", Err: err}
				case kindForeignKey:
					return &theater.Error{Code: theater.ENOTFOUND, Field: "authorId", Message: "authorId: no such user", Err: err}
				}
				return s.wrap(err, "bulk insert scripts")
			}
		}
		return nil
	})
}

// placeholder returns the n-th bind parameter. Everywhere else both dialects
// share "$n", but SQLite treats "$n" as a named parameter and resolves each
// one with a linear search while parsing: quadratic in a 2,400-parameter
// INSERT, where it was half of the demo load's time. Its anonymous "?" is
// positional and free.
func (s *Store) placeholder(n int) string {
	if s.dialect == sqliteDialect {
		return "?"
	}
	return "$" + itoa(n)
}
