-- Full-text search on an index, and sort=title (API.md, Lists and search).
-- Kept in step with ../postgres/0002_search.sql. The search columns of rows
-- that exist already are filled by Go right after the migration
-- (backfillSearch in fts.go): words are cut and accents folded in Go, the
-- same way for both databases, which SQL cannot do.

-- LIKE '%...%' over this column was a scan of the table: FTS5 replaces it.
ALTER TABLE scripts DROP COLUMN search_text;

-- The title as sort=title compares it: folded by Go, compared bytewise.
ALTER TABLE scripts ADD COLUMN title_key TEXT;
CREATE INDEX scripts_title_idx ON scripts (title_key, id);

-- The script's rowid in scripts_fts, ordered like created_at (see fts.go);
-- NULL until indexed. Unique, and the way from an FTS match to its script.
ALTER TABLE scripts ADD COLUMN search_rowid INTEGER;
CREATE UNIQUE INDEX scripts_search_rowid_idx ON scripts (search_rowid);

-- Contentless (the scripts table has the text) with contentless_delete so
-- rows can be removed and replaced. tokenize=ascii splits only on the
-- spaces Go puts between its tokens (non-ASCII bytes are word characters to
-- it), so the index holds exactly Go's words. detail=column: column filters
-- (title vs synopsis) without positions, which no query here needs.
-- A prefix query ("sea"*) makes FTS5 merge the whole doclists of every
-- word it matches before returning one row. prefix='1 2 3' keeps a ready
-- doclist for every prefix of one to three letters; a longer last word is
-- looked up in scripts_fts_vocab and searched as an OR of the few words it
-- begins (search.go), which FTS5 streams newest first and stops early.
CREATE VIRTUAL TABLE scripts_fts USING fts5(
    title, body, genre, author,
    content='', contentless_delete=1, tokenize='ascii', detail=column, prefix='1 2 3'
);
CREATE VIRTUAL TABLE scripts_fts_vocab USING fts5vocab(scripts_fts, 'row');
