package sqlstore

import (
	"context"
	"database/sql"
	"slices"
	"strings"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// Every list is one or two ordered walks of an index that stop after the
// page: the created_at indexes (newest), scripts_title_idx (title), and
// with a query the search index (see fts.go for SQLite's). A page after a
// cursor starts its walk at the cursor's row (keyset), so depth costs
// nothing; page=N (at most theater.MaxPage) skips rows and so costs N pages.
//
// Ranked search (sort relevance) is two walks, each newest first: the
// title matches (bucket 0), then the matches in the synopsis only (bucket
// 1). Neither scores anything, so a common word costs what a rare one does.

// segment is one ordered walk of a list.
type segment struct {
	bucket int
	match  matchKind // with a query: which matches
}

// ListScripts normalises f and returns a page of the matching scripts in
// f's order with their capped total and the next page's cursor (API.md,
// Lists and search). A query with no letter or digit in it ("!!!") finds
// nothing: words are what a search looks for, and answering such a query
// with the whole catalogue would make a typo the most expensive request.
// A cursor that is malformed, altered or from another filter is EINVALID
// on field "cursor".
func (s *Store) ListScripts(ctx context.Context, f theater.ScriptFilter) (theater.ScriptPage, error) {
	if err := f.Normalize(); err != nil {
		return theater.ScriptPage{}, err
	}
	release, err := s.holdConn(ctx)
	if err != nil {
		return theater.ScriptPage{}, err
	}
	defer release()
	var after *listPos
	if f.Cursor != "" {
		p, err := decodeCursor(f, f.Cursor)
		if err != nil {
			return theater.ScriptPage{}, err
		}
		after = &p
	}
	page := theater.ScriptPage{Items: []theater.Script{}, TotalExact: true}
	sq, ok, err := s.newSearch(ctx, f)
	if err != nil {
		return theater.ScriptPage{}, err
	}
	if f.Query != "" && (len(sq.toks) == 0 || !ok) {
		return page, nil
	}
	total, err := s.countScripts(ctx, f, sq)
	if err != nil {
		return theater.ScriptPage{}, err
	}
	page.Total, page.TotalExact = min(total, theater.MaxExactTotal), total <= theater.MaxExactTotal
	sq.few = page.TotalExact
	skip := 0
	if after == nil {
		skip = f.Offset()
	}
	if page.TotalExact && total <= skip {
		return page, nil
	}
	segs := []segment{{0, anyMatch}}
	if f.Sort == theater.SortRelevance {
		segs = []segment{{0, titleMatch}, {1, bodyOnlyMatch}}
	}
	// A list of one ordinary walk skips in SQL (OFFSET: the database steps
	// over index entries without building rows); the others skip in Go.
	sqlSkip := 0
	if len(segs) == 1 && !s.usesFTSWalk(f, sq) {
		sqlSkip, skip = skip, 0
	}
	need := skip + f.Limit + 1 // one more than the page: is there a next?
	var (
		items   []theater.Script
		buckets []int
	)
	for _, seg := range segs {
		var from *listPos
		if after != nil {
			if seg.bucket < after.bucket {
				continue
			}
			if seg.bucket == after.bucket {
				from = after
			}
		}
		got, err := s.walk(ctx, f, sq, seg, from, need-len(items), sqlSkip)
		if err != nil {
			return theater.ScriptPage{}, err
		}
		items = append(items, got...)
		for range got {
			buckets = append(buckets, seg.bucket)
		}
		if len(items) >= need {
			break
		}
	}
	if skip >= len(items) {
		return page, nil
	}
	items, buckets = items[skip:], buckets[skip:]
	if len(items) > f.Limit {
		last := items[f.Limit-1]
		page.NextCursor = encodeCursor(f, listPos{bucket: buckets[f.Limit-1], created: last.CreatedAt,
			titleKey: titleKey(last.Title), id: last.ID})
		items = items[:f.Limit]
	}
	page.Items = items
	return page, nil
}

// countScripts counts f's matches, but never more than MaxExactTotal+1 of
// them: past that the answer is "more than 10,000" whatever the catalogue.
func (s *Store) countScripts(ctx context.Context, f theater.ScriptFilter, sq search) (int, error) {
	limit := ` LIMIT ` + itoa(theater.MaxExactTotal+1)
	var q string
	var args []any
	if len(sq.toks) > 0 && s.dialect == sqliteDialect {
		// The index alone: genre and author are columns of it.
		q = `SELECT count(*) FROM (SELECT 1 FROM scripts_fts WHERE scripts_fts MATCH $1` + limit + `) t`
		args = []any{sq.match(anyMatch, f.Genre, f.AuthorID)}
	} else {
		w := newWhere()
		w.filters(s, f, sq, anyMatch)
		q = `SELECT count(*) FROM (SELECT 1 FROM scripts s` + w.sql() + limit + `) t`
		args = w.args
	}
	var n int
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, s.wrap(err, "count scripts")
	}
	return n, nil
}

// where collects the conditions and arguments of a query.
type where struct {
	conds []string
	args  []any
}

func newWhere() *where { return &where{} }

func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + itoa(len(w.args))
}

func (w *where) add(cond string) { w.conds = append(w.conds, cond) }

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// filters adds f's genre, author and (with toks) search conditions. In
// SQLite the search is a lookup of the FTS index, genre and author included.
func (w *where) filters(s *Store, f theater.ScriptFilter, sq search, m matchKind) {
	if len(sq.toks) > 0 && s.dialect == sqliteDialect {
		if sq.few {
			// At most 10,000 matches: collect them from the index, sort.
			w.add(`s.search_rowid IN (SELECT rowid FROM scripts_fts WHERE scripts_fts MATCH ` +
				w.arg(sq.match(m, f.Genre, f.AuthorID)) + `)`)
		} else {
			// More: at least 1 in 100 scripts at a million, so walking the
			// order's index and asking the FTS index about each row finds
			// a page soon, where collecting them all would not (740 ms
			// for "the" by title at a million).
			w.add(`EXISTS (SELECT 1 FROM scripts_fts WHERE scripts_fts MATCH ` +
				w.arg(sq.match(m, f.Genre, f.AuthorID)) + ` AND scripts_fts.rowid = s.search_rowid)`)
		}
		return
	}
	if f.Genre != "" {
		w.add("s.genre = " + w.arg(f.Genre))
	}
	if f.AuthorID != "" {
		w.add("s.author_id = " + w.arg(f.AuthorID))
	}
	if len(sq.toks) > 0 {
		q := w.arg(tsQuery(sq.toks))
		switch m {
		case titleMatch:
			w.add("s.title_tsv @@ " + q + "::tsquery")
		case bodyOnlyMatch:
			w.add("s.all_tsv @@ " + q + "::tsquery AND NOT s.title_tsv @@ " + q + "::tsquery")
		default:
			w.add("s.all_tsv @@ " + q + "::tsquery")
		}
	}
}

// walk returns up to n scripts of one segment of f's list, in order,
// starting after position from (nil: at the start), skipping offset rows
// (ordinary walks only).
func (s *Store) walk(ctx context.Context, f theater.ScriptFilter, sq search, seg segment, from *listPos, n, offset int) ([]theater.Script, error) {
	if s.usesFTSWalk(f, sq) {
		return s.ftsWalk(ctx, f, sq, seg, from, n)
	}
	q, args := s.walkSQL(f, sq, seg, from, n)
	if offset > 0 {
		q += ` OFFSET ` + itoa(offset)
	}
	if s.dialect == postgresDialect && len(sq.toks) > 0 && sq.few {
		return s.queryScriptsSorted(ctx, q, args...)
	}
	return s.queryScripts(ctx, q, args...)
}

// queryScriptsSorted runs a search of at most MaxExactTotal matches with
// PostgreSQL's plain index scans off, so the matches come from the GIN
// index and are sorted (a top-N sort of at most 10,000 rows). Otherwise
// the planner, which cannot know how rare the words are among the rows of
// an order, may walk the created_at index in the hope of meeting them soon,
// and read the whole table when they are rare ("zanzibar" in 5 of 100,000
// scripts: 42 ms, and ten times that at a million).
func (s *Store) queryScriptsSorted(ctx context.Context, q string, args ...any) ([]theater.Script, error) {
	var items []theater.Script
	err := s.inReadTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SET LOCAL enable_indexscan = off`); err != nil {
			return s.wrap(err, "plan search")
		}
		var err error
		items, err = queryScriptsOn(ctx, s, tx, q, args...)
		return err
	})
	return items, err
}

// usesFTSWalk reports whether f's list is walked by ftsWalk.
func (s *Store) usesFTSWalk(f theater.ScriptFilter, sq search) bool {
	return s.dialect == sqliteDialect && len(sq.toks) > 0 && f.Sort != theater.SortTitle
}

// walkSQL is the query of walk (but ftsWalk's).
func (s *Store) walkSQL(f theater.ScriptFilter, sq search, seg segment, from *listPos, n int) (string, []any) {
	w := newWhere()
	w.filters(s, f, sq, seg.match)
	order := ` ORDER BY s.created_at DESC, s.id`
	if f.Sort == theater.SortTitle {
		order = ` ORDER BY s.title_key, s.id`
		if from != nil {
			w.add(`(s.title_key, s.id) > (` + w.arg(from.titleKey) + `, ` + w.arg(from.id) + `)`)
		}
	} else if from != nil {
		// "created_at <= c" bounds the index range; the OR only sorts out
		// the ties at c, so it never makes the walk start at the top.
		c := w.arg(s.timeArg(from.created))
		w.add(`s.created_at <= ` + c + ` AND (s.created_at < ` + c + ` OR s.id > ` + w.arg(from.id) + `)`)
	}
	return scriptSelect + w.sql() + order + ` LIMIT ` + w.arg(n), w.args
}

// ftsWalk is walk for a newest-first search in SQLite: FTS5 hands out the
// matches by descending rowid, which is created_at order to the millisecond
// (fts.go); the rows of the last millisecond the page reaches are all read
// and sorted by id, so the order is exactly (created_at desc, id).
func (s *Store) ftsWalk(ctx context.Context, f theater.ScriptFilter, sq search, seg segment, from *listPos, n int) ([]theater.Script, error) {
	q, args := s.ftsWalkSQL(f, sq, seg, from)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(err, "search scripts")
	}
	defer rows.Close()
	var got []theater.Script
	for rows.Next() {
		sc, err := scanScript(rows)
		if err != nil {
			return nil, s.wrap(err, "scan script")
		}
		if len(got) >= n && !sc.CreatedAt.Equal(got[n-1].CreatedAt) {
			break // past the millisecond of the n-th row: the prefix is complete
		}
		got = append(got, sc)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err, "search scripts")
	}
	slices.SortStableFunc(got, func(a, b theater.Script) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return got[:min(n, len(got))], nil
}

// ftsWalkSQL is the query of ftsWalk: no LIMIT, since how many rows the
// page needs depends on the ties at its end; ftsWalk stops reading.
func (s *Store) ftsWalkSQL(f theater.ScriptFilter, sq search, seg segment, from *listPos) (string, []any) {
	w := newWhere()
	w.add(`scripts_fts MATCH ` + w.arg(sq.match(seg.match, f.Genre, f.AuthorID)))
	if from != nil {
		// Rowids below the next millisecond's: the index seeks there.
		w.add(`scripts_fts.rowid < ` + w.arg(searchRowBase(from.created)+1<<searchRowBits))
		c := w.arg(s.timeArg(from.created))
		w.add(`s.created_at <= ` + c + ` AND (s.created_at < ` + c + ` OR s.id > ` + w.arg(from.id) + `)`)
	}
	// CROSS JOIN is SQLite's way to fix the join order: the index outside.
	return `SELECT ` + scriptCols + ` FROM scripts_fts CROSS JOIN scripts s ON s.search_rowid = scripts_fts.rowid` +
		w.sql() + ` ORDER BY scripts_fts.rowid DESC`, w.args
}
