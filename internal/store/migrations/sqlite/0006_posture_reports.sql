-- Issue 6: posture reports sent by `bulwark posture cluster|manifests|node
-- --server`. The columns are what lists and trends read; report holds the
-- whole posture.Report as zstd-compressed JSON (report_encoding says how).
CREATE TABLE posture_reports (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    target            TEXT NOT NULL CHECK (target IN ('cluster', 'manifests', 'node')),
    name              TEXT NOT NULL DEFAULT '',
    catalogue_version TEXT NOT NULL DEFAULT '',
    uploaded_by       TEXT NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    score             REAL NOT NULL,
    objects           INTEGER NOT NULL DEFAULT 0,
    passed            INTEGER NOT NULL DEFAULT 0,
    failed            INTEGER NOT NULL DEFAULT 0,
    skipped           INTEGER NOT NULL DEFAULT 0,
    summary           TEXT NOT NULL,
    report_encoding   TEXT NOT NULL,
    report            BLOB NOT NULL
);
CREATE INDEX posture_reports_target ON posture_reports (target, name, created_at);
CREATE INDEX posture_reports_created ON posture_reports (created_at);
