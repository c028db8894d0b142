-- Issue 7 speed: PostgreSQL alert ingest (session 5).
--
-- Evidence is stored as text, not json. Central validates it before it is
-- stored (alerts.Alert.Validate: a JSON object, ≤ 256 KiB; RecordAlert
-- checks it too), stores it and returns it byte for byte, and no query
-- looks inside it; a json column made PostgreSQL parse every stored
-- evidence again (json_lex: ~3% of the backend's time per new alert, and
-- the repeat path cast text to json per row). SQLite stores it as TEXT
-- already. The column's values are unchanged (json keeps the text as
-- written).
ALTER TABLE alerts ALTER COLUMN evidence DROP DEFAULT;
ALTER TABLE alerts ALTER COLUMN evidence TYPE TEXT;
ALTER TABLE alerts ALTER COLUMN evidence SET DEFAULT '{}';

-- Repeats of an open alert update its row; the update is heap-only (HOT:
-- no new index entries) when the new version fits on the row's page. With
-- one sender that is ~98% of the updates at fillfactor 70. With four
-- senders counting into the same alerts at once, the versions their
-- overlapping transactions leave cannot be pruned until those end, pages
-- fill up, and only ~33% stayed HOT: the rest inserted into every index of
-- alerts and ran B-tree bottom-up deletion (~45% of the backends' time,
-- profiled). At fillfactor 50, ~54% stay HOT (same benchmark), ~10% less
-- CPU per repeated alert. It applies to pages written from now on (no
-- rewrite); new rows take about 40% more pages than at 70.
ALTER TABLE alerts SET (fillfactor = 50);
