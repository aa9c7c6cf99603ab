package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// bulkRows is how many scripts one INSERT carries: 14 parameters each keeps
// a statement at 2,800 parameters, far under both databases' limits (SQLite
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
		if ms := created.UnixMilli(); ms < minSearchMs || ms >= maxSearchMs {
			return fmt.Errorf("script %d: %w", i, theater.Invalid("createdAt", "must be between 1861 and 2139"))
		}
		updated := created
		if !sc.UpdatedAt.IsZero() {
			updated = theater.Timestamp(sc.UpdatedAt)
		}
		rows[i] = scriptFromInput(sc.ID, sc.AuthorID, in, created)
		rows[i].UpdatedAt = updated
	}
	return s.inTx(ctx, func(tx *sql.Tx) error { return s.insertScripts(ctx, tx, rows) })
}

// insertScripts inserts complete, validated scripts and their search index
// entries, bulkRows per statement, in tx: the index is never a transaction
// behind the table. A taken id is ECONFLICT on "id", an unknown author
// ENOTFOUND on "authorId".
func (s *Store) insertScripts(ctx context.Context, tx *sql.Tx, rows []theater.Script) error {
	for start := 0; start < len(rows); start += bulkRows {
		batch := rows[start:min(start+bulkRows, len(rows))]
		var searchRows []int64
		if s.dialect == sqliteDialect {
			var err error
			if searchRows, err = s.allocSearchRows(ctx, tx, batch); err != nil {
				return err
			}
		}
		cols := 13 // SQLite: 11 plain columns, title_key and search_rowid
		var b strings.Builder
		b.WriteString(`INSERT INTO scripts
	(id, title, author_id, genre, synopsis, cast_min, cast_max, duration_minutes, language, created_at, updated_at, title_key, `)
		if s.dialect == sqliteDialect {
			b.WriteString(`search_rowid) VALUES `)
		} else {
			cols = 14
			b.WriteString(`title_tsv, all_tsv) VALUES `)
		}
		args := make([]any, 0, len(batch)*cols)
		docs := make([]searchDoc, len(batch))
		for i, sc := range batch {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(")
			for j := 1; j <= cols; j++ {
				if j > 1 {
					b.WriteString(", ")
				}
				p := s.placeholder(len(args) + j)
				if s.dialect == postgresDialect && j > 12 {
					p = "array_to_tsvector(" + p + "::text[])"
				}
				b.WriteString(p)
			}
			b.WriteString(")")
			docs[i] = newSearchDoc(sc.Title, sc.Synopsis)
			args = append(args, sc.ID, sc.Title, sc.AuthorID, sc.Genre, sc.Synopsis, sc.CastMin, sc.CastMax,
				sc.DurationMinutes, sc.Language, s.timeArg(sc.CreatedAt), s.timeArg(sc.UpdatedAt), titleKey(sc.Title))
			if s.dialect == sqliteDialect {
				args = append(args, searchRows[i])
			} else {
				args = append(args, docs[i].pgTitleLexemes(), docs[i].pgAllLexemes())
			}
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			switch s.classify(err) {
			case kindUnique:
				return &theater.Error{Code: theater.ECONFLICT, Field: "id", Message: "id: a script with this id already exists", Err: err}
			case kindForeignKey:
				return &theater.Error{Code: theater.ENOTFOUND, Field: "authorId", Message: "authorId: no such user", Err: err}
			}
			return s.wrap(err, "insert scripts")
		}
		if s.dialect == sqliteDialect {
			fts := make([]ftsRow, len(batch))
			for i, sc := range batch {
				fts[i] = ftsRow{searchRows[i], docs[i], sc.Genre, sc.AuthorID}
			}
			if err := s.insertFTS(ctx, tx, fts); err != nil {
				return err
			}
		}
	}
	return nil
}

// placeholder returns the n-th bind parameter. Everywhere else both dialects
// share "$n", but SQLite treats "$n" as a named parameter and resolves each
// one with a linear search while parsing: quadratic in a 2,600-parameter
// INSERT, where it was half of the demo load's time. Its anonymous "?" is
// positional and free.
func (s *Store) placeholder(n int) string {
	if s.dialect == sqliteDialect {
		return "?"
	}
	return "$" + itoa(n)
}
