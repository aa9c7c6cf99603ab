package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// scriptCols are the columns scanScript reads (s: scripts); scriptSelect
// reads scripts with their author's name. The name is a subquery, not a
// join, so that no planner can choose to walk users first and then sort
// the author's scripts (SQLite did, with one user in the table).
const (
	scriptCols = `s.id, s.title, s.author_id, (SELECT u.name FROM users u WHERE u.id = s.author_id), s.genre,
	s.synopsis, s.cast_min, s.cast_max, s.duration_minutes, s.language, s.created_at, s.updated_at`
	scriptSelect = `SELECT ` + scriptCols + ` FROM scripts s`
)

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface{ Scan(dest ...any) error }

func scanScript(r rowScanner) (theater.Script, error) {
	var sc theater.Script
	err := r.Scan(&sc.ID, &sc.Title, &sc.AuthorID, &sc.AuthorName, &sc.Genre, &sc.Synopsis,
		&sc.CastMin, &sc.CastMax, &sc.DurationMinutes, &sc.Language,
		scanTime{&sc.CreatedAt}, scanTime{&sc.UpdatedAt})
	return sc, err
}

// CreateScript validates in and stores a new script by authorID. An unknown
// author is ENOTFOUND on field "authorId".
func (s *Store) CreateScript(ctx context.Context, authorID string, in theater.ScriptInput) (theater.Script, error) {
	if err := in.Validate(); err != nil {
		return theater.Script{}, err
	}
	now := s.now()
	sc := scriptFromInput(theater.NewID(), authorID, in, now)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		name, err := s.authorName(ctx, tx, authorID)
		if err != nil {
			return err
		}
		sc.AuthorName = name
		return s.insertScript(ctx, tx, sc)
	})
	if err != nil {
		return theater.Script{}, err
	}
	return sc, nil
}

func scriptFromInput(id, authorID string, in theater.ScriptInput, now time.Time) theater.Script {
	return theater.Script{
		ID: id, Title: in.Title, AuthorID: authorID, Genre: in.Genre, Synopsis: in.Synopsis,
		CastMin: in.CastMin, CastMax: in.CastMax, DurationMinutes: in.DurationMinutes,
		Language: in.Language, CreatedAt: now, UpdatedAt: now,
	}
}

// authorName returns the name of user id, or ENOTFOUND on field "authorId".
func (s *Store) authorName(ctx context.Context, tx *sql.Tx, id string) (string, error) {
	notFound := &theater.Error{Code: theater.ENOTFOUND, Field: "authorId", Message: "authorId: no such user"}
	if !theater.ValidID(id) {
		return "", notFound
	}
	var name string
	err := tx.QueryRowContext(ctx, `SELECT name FROM users WHERE id = $1`, id).Scan(&name)
	if isNoRows(err) {
		return "", notFound
	}
	if err != nil {
		return "", s.wrap(err, "select author")
	}
	return name, nil
}

func (s *Store) insertScript(ctx context.Context, tx *sql.Tx, sc theater.Script) error {
	if err := s.insertScripts(ctx, tx, []theater.Script{sc}); err != nil {
		if theater.ErrorCode(err) == theater.ECONFLICT {
			// A fresh random id cannot collide; keep the cause for the logs.
			return theater.Wrap(theater.EINTERNAL, "cannot store the script", err)
		}
		return err
	}
	return nil
}

// ScriptByID returns the script with id, or ENOTFOUND.
func (s *Store) ScriptByID(ctx context.Context, id string) (theater.Script, error) {
	if !theater.ValidID(id) {
		return theater.Script{}, theater.Errorf(theater.ENOTFOUND, "script not found")
	}
	release, err := s.holdConn(ctx)
	if err != nil {
		return theater.Script{}, err
	}
	defer release()
	sc, err := scanScript(s.db.QueryRowContext(ctx, scriptSelect+` WHERE s.id = $1`, id))
	if isNoRows(err) {
		return theater.Script{}, theater.Errorf(theater.ENOTFOUND, "script not found")
	}
	if err != nil {
		return theater.Script{}, s.wrap(err, "select script")
	}
	return sc, nil
}

// UpdateScript validates in and replaces the writable fields of script id,
// stamping UpdatedAt, or returns ENOTFOUND. The author and CreatedAt never
// change.
func (s *Store) UpdateScript(ctx context.Context, id string, in theater.ScriptInput) (theater.Script, error) {
	if err := in.Validate(); err != nil {
		return theater.Script{}, err
	}
	if !theater.ValidID(id) {
		return theater.Script{}, theater.Errorf(theater.ENOTFOUND, "script not found")
	}
	var sc theater.Script
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var (
			authorID  string
			searchRow sql.NullInt64
		)
		doc := newSearchDoc(in.Title, in.Synopsis)
		var err error
		if s.dialect == sqliteDialect {
			err = tx.QueryRowContext(ctx, `UPDATE scripts SET title = $1, genre = $2, synopsis = $3, cast_min = $4,
			cast_max = $5, duration_minutes = $6, language = $7, title_key = $8, updated_at = $9 WHERE id = $10
			RETURNING author_id, search_rowid`,
				in.Title, in.Genre, in.Synopsis, in.CastMin, in.CastMax, in.DurationMinutes, in.Language,
				titleKey(in.Title), s.timeArg(s.now()), id).Scan(&authorID, &searchRow)
		} else {
			err = tx.QueryRowContext(ctx, `UPDATE scripts SET title = $1, genre = $2, synopsis = $3, cast_min = $4,
			cast_max = $5, duration_minutes = $6, language = $7, title_key = $8, updated_at = $9,
			title_tsv = array_to_tsvector($10::text[]), all_tsv = array_to_tsvector($11::text[]) WHERE id = $12
			RETURNING author_id`,
				in.Title, in.Genre, in.Synopsis, in.CastMin, in.CastMax, in.DurationMinutes, in.Language,
				titleKey(in.Title), s.timeArg(s.now()), doc.pgTitleLexemes(), doc.pgAllLexemes(), id).Scan(&authorID)
		}
		if isNoRows(err) {
			return theater.Errorf(theater.ENOTFOUND, "script not found")
		}
		if err != nil {
			return s.wrap(err, "update script")
		}
		if s.dialect == sqliteDialect {
			// The index row is replaced under the same rowid: the script
			// keeps its place in the created_at order.
			if _, err := tx.ExecContext(ctx, `DELETE FROM scripts_fts WHERE rowid = $1`, searchRow.Int64); err != nil {
				return s.wrap(err, "update search index")
			}
			if err := s.insertFTS(ctx, tx, []ftsRow{{searchRow.Int64, doc, in.Genre, authorID}}); err != nil {
				return err
			}
		}
		// Read back in the same transaction: the caller gets exactly what
		// is stored, author name included.
		sc, err = scanScript(tx.QueryRowContext(ctx, scriptSelect+` WHERE s.id = $1`, id))
		if err != nil {
			return s.wrap(err, "select updated script")
		}
		return nil
	})
	if err != nil {
		return theater.Script{}, err
	}
	return sc, nil
}

// DeleteScript removes script id, or returns ENOTFOUND. A script with
// licences stays: ECONFLICT, since licensees must keep seeing what they hold.
func (s *Store) DeleteScript(ctx context.Context, id string) error {
	if !theater.ValidID(id) {
		return theater.Errorf(theater.ENOTFOUND, "script not found")
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var searchRow sql.NullInt64
		q := `DELETE FROM scripts WHERE id = $1 RETURNING NULL`
		if s.dialect == sqliteDialect {
			q = `DELETE FROM scripts WHERE id = $1 RETURNING search_rowid`
		}
		err := tx.QueryRowContext(ctx, q, id).Scan(&searchRow)
		if isNoRows(err) {
			return theater.Errorf(theater.ENOTFOUND, "script not found")
		}
		if err != nil {
			if s.classify(err) == kindForeignKey {
				return &theater.Error{Code: theater.ECONFLICT, Message: "the script has licences and cannot be deleted", Err: err}
			}
			return s.wrap(err, "delete script")
		}
		if searchRow.Valid {
			if _, err := tx.ExecContext(ctx, `DELETE FROM scripts_fts WHERE rowid = $1`, searchRow.Int64); err != nil {
				return s.wrap(err, "delete from search index")
			}
		}
		return nil
	})
}

func (s *Store) queryScripts(ctx context.Context, q string, args ...any) ([]theater.Script, error) {
	return queryScriptsOn(ctx, s, s.db, q, args...)
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryScriptsOn(ctx context.Context, s *Store, db querier, q string, args ...any) ([]theater.Script, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(err, "select scripts")
	}
	defer rows.Close()
	items := []theater.Script{} // non-nil: encodes as [] rather than null
	for rows.Next() {
		sc, err := scanScript(rows)
		if err != nil {
			return nil, s.wrap(err, "scan script")
		}
		items = append(items, sc)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err, "select scripts")
	}
	return items, nil
}
