-- Issue 7 speed, session 7: PostgreSQL lowers the alerts table's fillfactor
-- (postgres/0017). SQLite has no fillfactor: nothing to do.
SELECT 1;
