-- Every word of the titles and synopses in the search index, for expanding
-- a query's last word as a prefix (newSearch in search.go). The vocabulary
-- table it replaces (fts5vocab) counts each word's documents as it lists
-- the word, reading whole doclists: 6.8 ms for "ligh" at a million
-- scripts, and growing with them. This is a B-tree range instead. Kept by
-- insertFTS in the same transaction as the index; a word whose scripts are
-- all deleted stays (it only adds an alternative that matches nothing).
CREATE TABLE search_words (word TEXT PRIMARY KEY) WITHOUT ROWID;

-- The words already indexed, from the title and synopsis columns only.
CREATE VIRTUAL TABLE temp.scripts_fts_columns USING fts5vocab(main, scripts_fts, 'col');
INSERT OR IGNORE INTO search_words (word)
    SELECT term FROM temp.scripts_fts_columns WHERE col IN ('title', 'body');
DROP TABLE temp.scripts_fts_columns;
DROP TABLE scripts_fts_vocab;
