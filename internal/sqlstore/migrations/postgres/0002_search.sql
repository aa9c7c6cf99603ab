-- Full-text search on an index, and sort=title (API.md, Lists and search).
-- Kept in step with ../sqlite/0002_search.sql. The search columns of rows
-- that exist already are filled by Go right after the migration
-- (backfillSearch in fts.go): words are cut and accents folded in Go, the
-- same way for both databases, so no unaccent extension is needed.

-- LIKE '%...%' over this column was a scan of the table: GIN replaces it.
ALTER TABLE scripts DROP COLUMN search_text;

-- The title as sort=title compares it: folded by Go, compared bytewise
-- (COLLATE "C") exactly as SQLite does, whatever the database's locale.
ALTER TABLE scripts ADD COLUMN title_key TEXT COLLATE "C";
CREATE INDEX scripts_title_idx ON scripts (title_key, id);

-- Go's tokens as lexemes (array_to_tsvector: no parser, no dictionary).
-- title_tsv ranks a title match first; all_tsv is title and synopsis.
ALTER TABLE scripts ADD COLUMN title_tsv tsvector;
ALTER TABLE scripts ADD COLUMN all_tsv tsvector;
CREATE INDEX scripts_title_tsv_idx ON scripts USING gin (title_tsv);
CREATE INDEX scripts_all_tsv_idx ON scripts USING gin (all_tsv);
-- Finds the rows still to index at start-up without a scan; empty after.
CREATE INDEX scripts_unindexed_idx ON scripts (id) WHERE all_tsv IS NULL;
