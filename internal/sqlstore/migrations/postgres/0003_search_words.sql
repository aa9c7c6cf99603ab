-- Kept in step with ../sqlite/0003_search_words.sql, which adds a table of
-- the search index's words for expanding a prefix. PostgreSQL needs none:
-- a prefix tsquery ('ligh':*) is a range scan of the GIN index's own
-- sorted entry tree. This migration only keeps the numbers aligned.
SELECT 1;
