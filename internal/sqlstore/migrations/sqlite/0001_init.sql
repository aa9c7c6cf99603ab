-- Initial schema. Kept in step with ../postgres/0001_init.sql: the two files
-- differ only in the timestamp type: TEXT here, always written by Go as
-- 2006-01-02T15:04:05.000Z (UTC, fixed width, so text order is time order),
-- TIMESTAMPTZ there.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    -- Stored normalised (trimmed, lower-cased) by theater.NormalizeEmail, so
    -- this plain unique constraint is the case-insensitive uniqueness rule.
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('producer', 'playwright', 'admin')),
    password_hash TEXT NOT NULL,
    created_at    TEXT        NOT NULL
);

CREATE TABLE scripts (
    id               TEXT PRIMARY KEY,
    title            TEXT NOT NULL,
    author_id        TEXT NOT NULL REFERENCES users (id),
    genre            TEXT NOT NULL,
    synopsis         TEXT NOT NULL,
    cast_min         INTEGER NOT NULL,
    cast_max         INTEGER NOT NULL,
    duration_minutes INTEGER NOT NULL,
    language         TEXT NOT NULL,
    -- Lower-cased title and synopsis, written by Go (strings.ToLower) so that
    -- case-insensitive search behaves the same on both databases and for all
    -- of Unicode (SQLite's lower() and LIKE fold ASCII only).
    search_text      TEXT NOT NULL,
    created_at       TEXT        NOT NULL,
    updated_at       TEXT        NOT NULL
);

-- One index per list the API serves, each matching ORDER BY created_at DESC, id,
-- so a page is an index range scan, not a sort of the whole table.
CREATE INDEX scripts_created_idx ON scripts (created_at DESC, id);
CREATE INDEX scripts_genre_created_idx ON scripts (genre, created_at DESC, id);
CREATE INDEX scripts_author_created_idx ON scripts (author_id, created_at DESC, id);

CREATE TABLE licenses (
    id           TEXT PRIMARY KEY,
    -- No ON DELETE action: a licence records a deal, so its script cannot
    -- vanish under it; deleting a licensed script fails (the store answers
    -- ECONFLICT). NO ACTION rather than RESTRICT because SQLite reports a
    -- RESTRICT failure as a trigger error, not a foreign-key error.
    script_id    TEXT NOT NULL REFERENCES scripts (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    type         TEXT NOT NULL CHECK (type IN ('perusal', 'performance')),
    performances INTEGER NOT NULL CHECK (performances >= 0),
    starts_at    TEXT        NOT NULL,
    ends_at      TEXT        NOT NULL,
    created_at   TEXT        NOT NULL
);

CREATE INDEX licenses_user_created_idx ON licenses (user_id, created_at DESC, id);
-- Foreign keys are not indexed automatically; deleting a script checks this.
CREATE INDEX licenses_script_idx ON licenses (script_id);
