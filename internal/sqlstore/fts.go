package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// SQLite's index is the FTS5 table scripts_fts (migration 0002). FTS5 can
// return its matches in rowid order and stop after a few, but in no other
// order; so a script's FTS rowid (scripts.search_rowid) is made to sort like
// its creation time: (createdAt in ms since 2000) << 21, plus a counter for
// scripts created in the same millisecond. Walking a search newest first is
// then `ORDER BY rowid DESC` on the index, reading as many matches as the
// page needs however common the word: no match is ever scored or sorted.
// Within one millisecond the counter is not the id order of the API, so
// the walk reads a millisecond's scripts to its end and sorts them by id
// (ftsWalk): exact, at the cost of reading the ties.
const (
	searchRowBits = 21           // 2 million scripts per millisecond
	searchEpochMs = 946684800000 // 2000-01-01T00:00:00Z
	// Times must fit in the 42 signed bits left: 1861 to 2139.
	minSearchMs = searchEpochMs - 1<<42
	maxSearchMs = searchEpochMs + 1<<42
)

// searchRowBase is the first search_rowid of t's millisecond.
func searchRowBase(t time.Time) int64 {
	return (t.UnixMilli() - searchEpochMs) << searchRowBits
}

// allocSearchRows returns a new search_rowid for each script of batch (at
// most bulkRows): the next free counter of its millisecond. One query asks
// for the highest rowid in use in every millisecond of the batch. SQLite
// has one writer at a time (BEGIN IMMEDIATE), so nobody takes the same
// numbers between this query and the insert.
func (s *Store) allocSearchRows(ctx context.Context, tx *sql.Tx, batch []theater.Script) ([]int64, error) {
	next := make(map[int64]int64)
	var (
		b    strings.Builder
		args []any
	)
	b.WriteString(`WITH b(k) AS (VALUES `)
	for _, sc := range batch {
		k := searchRowBase(sc.CreatedAt)
		if _, ok := next[k]; ok {
			continue
		}
		next[k] = k
		if len(args) > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?)")
		args = append(args, k)
	}
	b.WriteString(`) SELECT b.k, (SELECT max(search_rowid) FROM scripts WHERE search_rowid >= b.k AND search_rowid < b.k + ` +
		itoa(1<<searchRowBits) + `) FROM b`)
	rows, err := tx.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, s.wrap(err, "allocate search rows")
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k   int64
			top sql.NullInt64
		)
		if err := rows.Scan(&k, &top); err != nil {
			return nil, s.wrap(err, "allocate search rows")
		}
		if top.Valid {
			next[k] = top.Int64 + 1
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err, "allocate search rows")
	}
	out := make([]int64, len(batch))
	for i, sc := range batch {
		k := searchRowBase(sc.CreatedAt)
		if next[k]-k >= 1<<searchRowBits {
			return nil, theater.Invalid("createdAt", "too many scripts created in the same millisecond")
		}
		out[i] = next[k]
		next[k]++
	}
	return out, nil
}

// ftsRow is one row of scripts_fts.
type ftsRow struct {
	rowid           int64
	doc             searchDoc
	genre, authorID string
}

// insertFTS adds rows to scripts_fts. Title and synopsis go in as our
// tokens joined by spaces, which the "ascii" tokenizer splits back exactly;
// genre and author are columns too, so a search within a genre or an
// author's scripts is answered by the index alone.
func (s *Store) insertFTS(ctx context.Context, tx *sql.Tx, rows []ftsRow) error {
	var b strings.Builder
	b.WriteString(`INSERT INTO scripts_fts (rowid, title, body, genre, author) VALUES `)
	args := make([]any, 0, 5*len(rows))
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?)")
		args = append(args, r.rowid, strings.Join(r.doc.title, " "), strings.Join(r.doc.body, " "),
			genreToken(r.genre), r.authorID)
	}
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		return s.wrap(err, "insert into search index")
	}
	return s.insertWords(ctx, tx, rows)
}

// wordsPerInsert bounds the parameters of one INSERT into search_words.
const wordsPerInsert = 500

// insertWords adds the title and synopsis words of rows to search_words
// (migration 0003), the table a prefix is expanded from, each word once.
func (s *Store) insertWords(ctx context.Context, tx *sql.Tx, rows []ftsRow) error {
	seen := make(map[string]struct{})
	var words []any
	for _, r := range rows {
		for _, toks := range [][]string{r.doc.title, r.doc.body} {
			for _, t := range toks {
				if _, ok := seen[t]; !ok {
					seen[t] = struct{}{}
					words = append(words, t)
				}
			}
		}
	}
	for start := 0; start < len(words); start += wordsPerInsert {
		part := words[start:min(start+wordsPerInsert, len(words))]
		q := `INSERT OR IGNORE INTO search_words (word) VALUES (?)` + strings.Repeat(", (?)", len(part)-1)
		if _, err := tx.ExecContext(ctx, q, part...); err != nil {
			return s.wrap(err, "insert search words")
		}
	}
	return nil
}

// backfillBatch is how many existing scripts one backfill transaction
// indexes: short enough that writers queue behind it for milliseconds.
const backfillBatch = 500

// backfillSearch indexes the scripts stored before migration 0002 (their
// search columns are NULL), in short transactions, until none is left. The
// folding is Go's, so SQL alone cannot do it in the migration. It is a no-op
// (one indexed lookup) once everything is indexed; concurrent instances
// share the work (SQLite: one writer at a time; PostgreSQL: SKIP LOCKED).
func (s *Store) backfillSearch(ctx context.Context) error {
	for {
		n := 0
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			q := `SELECT id, title, synopsis, genre, author_id, created_at FROM scripts WHERE search_rowid IS NULL LIMIT ` + itoa(backfillBatch)
			if s.dialect == postgresDialect {
				q = `SELECT id, title, synopsis, genre, author_id, created_at FROM scripts WHERE all_tsv IS NULL LIMIT ` +
					itoa(backfillBatch) + ` FOR UPDATE SKIP LOCKED`
			}
			rows, err := tx.QueryContext(ctx, q)
			if err != nil {
				return s.wrap(err, "select scripts to index")
			}
			var batch []theater.Script
			for rows.Next() {
				var sc theater.Script
				if err := rows.Scan(&sc.ID, &sc.Title, &sc.Synopsis, &sc.Genre, &sc.AuthorID, scanTime{&sc.CreatedAt}); err != nil {
					rows.Close()
					return s.wrap(err, "select scripts to index")
				}
				batch = append(batch, sc)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return s.wrap(err, "select scripts to index")
			}
			n = len(batch)
			for start := 0; start < len(batch); start += bulkRows {
				part := batch[start:min(start+bulkRows, len(batch))]
				if err := s.indexExisting(ctx, tx, part); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || n == 0 {
			return err
		}
	}
}

// indexExisting fills the search columns of stored scripts.
func (s *Store) indexExisting(ctx context.Context, tx *sql.Tx, batch []theater.Script) error {
	if s.dialect == postgresDialect {
		for _, sc := range batch {
			d := newSearchDoc(sc.Title, sc.Synopsis)
			if _, err := tx.ExecContext(ctx, `UPDATE scripts SET title_key = $1, title_tsv = array_to_tsvector($2::text[]),
			all_tsv = array_to_tsvector($3::text[]) WHERE id = $4`,
				titleKey(sc.Title), d.pgTitleLexemes(), d.pgAllLexemes(), sc.ID); err != nil {
				return s.wrap(err, "index script")
			}
		}
		return nil
	}
	ids, err := s.allocSearchRows(ctx, tx, batch)
	if err != nil {
		return err
	}
	fts := make([]ftsRow, len(batch))
	for i, sc := range batch {
		if _, err := tx.ExecContext(ctx, `UPDATE scripts SET title_key = $1, search_rowid = $2 WHERE id = $3`,
			titleKey(sc.Title), ids[i], sc.ID); err != nil {
			return s.wrap(err, "index script")
		}
		fts[i] = ftsRow{ids[i], newSearchDoc(sc.Title, sc.Synopsis), sc.Genre, sc.AuthorID}
	}
	return s.insertFTS(ctx, tx, fts)
}
