package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// scriptSelect reads scripts with their author's name. Every list shares the
// ORDER BY of listOrder, which the created_at indexes serve.
const (
	scriptSelect = `SELECT s.id, s.title, s.author_id, u.name, s.genre, s.synopsis, s.cast_min, s.cast_max,
	s.duration_minutes, s.language, s.created_at, s.updated_at
FROM scripts s JOIN users u ON u.id = s.author_id`
	listOrder = ` ORDER BY s.created_at DESC, s.id`
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

// searchText is what the q filter matches: title and synopsis, lower-cased
// by Go so both databases fold case the same way for all of Unicode. The
// newline keeps a query from matching across the two: validated titles and
// queries cannot contain one.
func searchText(title, synopsis string) string {
	return strings.ToLower(title + "\n" + synopsis)
}

// likeEscape escapes LIKE's wildcards and the escape character itself, so a
// query of "100%" matches the text "100%" and not "1000 years".
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
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
	_, err := tx.ExecContext(ctx, `INSERT INTO scripts
	(id, title, author_id, genre, synopsis, cast_min, cast_max, duration_minutes, language, search_text, created_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		sc.ID, sc.Title, sc.AuthorID, sc.Genre, sc.Synopsis, sc.CastMin, sc.CastMax, sc.DurationMinutes,
		sc.Language, searchText(sc.Title, sc.Synopsis), s.timeArg(sc.CreatedAt), s.timeArg(sc.UpdatedAt))
	if err != nil {
		if s.classify(err) == kindForeignKey {
			// The author was deleted after we looked: same answer as before.
			return &theater.Error{Code: theater.ENOTFOUND, Field: "authorId", Message: "authorId: no such user", Err: err}
		}
		return s.wrap(err, "insert script")
	}
	return nil
}

// ScriptByID returns the script with id, or ENOTFOUND.
func (s *Store) ScriptByID(ctx context.Context, id string) (theater.Script, error) {
	if !theater.ValidID(id) {
		return theater.Script{}, theater.Errorf(theater.ENOTFOUND, "script not found")
	}
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
		res, err := tx.ExecContext(ctx, `UPDATE scripts SET title = $1, genre = $2, synopsis = $3, cast_min = $4,
		cast_max = $5, duration_minutes = $6, language = $7, search_text = $8, updated_at = $9 WHERE id = $10`,
			in.Title, in.Genre, in.Synopsis, in.CastMin, in.CastMax, in.DurationMinutes, in.Language,
			searchText(in.Title, in.Synopsis), s.timeArg(s.now()), id)
		if err != nil {
			return s.wrap(err, "update script")
		}
		if n, err := res.RowsAffected(); err != nil {
			return s.wrap(err, "update script")
		} else if n == 0 {
			return theater.Errorf(theater.ENOTFOUND, "script not found")
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
	res, err := s.db.ExecContext(ctx, `DELETE FROM scripts WHERE id = $1`, id)
	if err != nil {
		if s.classify(err) == kindForeignKey {
			return &theater.Error{Code: theater.ECONFLICT, Message: "the script has licences and cannot be deleted", Err: err}
		}
		return s.wrap(err, "delete script")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap(err, "delete script")
	}
	if n == 0 {
		return theater.Errorf(theater.ENOTFOUND, "script not found")
	}
	return nil
}

// ListScripts normalises f (EINVALID naming page, limit, genre, q or author)
// and returns one page of matching scripts, newest first, with the total
// number of matches.
func (s *Store) ListScripts(ctx context.Context, f theater.ScriptFilter) ([]theater.Script, int, error) {
	if err := f.Normalize(); err != nil {
		return nil, 0, err
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + itoa(len(args))
	}
	if f.Genre != "" {
		where = append(where, "s.genre = "+arg(f.Genre))
	}
	if f.AuthorID != "" {
		where = append(where, "s.author_id = "+arg(f.AuthorID))
	}
	if f.Query != "" {
		// The pattern is a bound parameter, escaped for LIKE; ESCAPE is
		// spelled out because neither database has a default we can rely
		// on for both (PostgreSQL's is '\', SQLite has none).
		where = append(where, `s.search_text LIKE `+arg("%"+likeEscape(strings.ToLower(f.Query))+"%")+` ESCAPE '\'`)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	// The count needs no join: every script has an author (foreign key).
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM scripts s`+cond, args...).Scan(&total); err != nil {
		return nil, 0, s.wrap(err, "count scripts")
	}
	if total <= f.Offset() {
		return []theater.Script{}, total, nil
	}
	q := scriptSelect + cond + listOrder + ` LIMIT ` + arg(f.Limit) + ` OFFSET ` + arg(f.Offset())
	items, err := s.queryScripts(ctx, q, args...)
	if err != nil {
		return nil, 0, err
	}
	return items, total, nil
}

// ScriptsByAuthor returns every script by authorID, newest first. An unknown
// or malformed author id has no scripts: the caller decides whether that is
// a 404 (by looking the user up).
func (s *Store) ScriptsByAuthor(ctx context.Context, authorID string) ([]theater.Script, error) {
	if !theater.ValidID(authorID) {
		return []theater.Script{}, nil
	}
	return s.queryScripts(ctx, scriptSelect+` WHERE s.author_id = $1`+listOrder, authorID)
}

func (s *Store) queryScripts(ctx context.Context, q string, args ...any) ([]theater.Script, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
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
