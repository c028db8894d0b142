-- Issue 7 speed: PostgreSQL-only change (alerts_workload without B-tree
-- deduplication, which SQLite does not have); kept so both dialects share
-- migration numbers.
SELECT 1;
