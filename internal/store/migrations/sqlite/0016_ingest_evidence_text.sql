-- Issue 7 speed, session 5: PostgreSQL stores alert evidence as text
-- (postgres/0016). SQLite's evidence column is TEXT already: nothing to do.
SELECT 1;
