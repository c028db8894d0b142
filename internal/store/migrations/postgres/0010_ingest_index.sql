-- Issue 7 speed: PostgreSQL alert ingest. The related-alerts index
-- (cluster, namespace, workload) has few distinct keys (a workload raises
-- many alerts), and with B-tree deduplication each new alert row rewrote
-- a growing posting list: measured as the costliest part of inserting a
-- new alert (about 4.5 µs of ~20 µs per row). Without deduplication an
-- equal key is placed by heap position, at the right end of its run: a
-- plain append. The index is larger; the detail page's lookup is the same.
DROP INDEX alerts_workload;
CREATE INDEX alerts_workload ON alerts (cluster, namespace, workload) WITH (deduplicate_items = off);
