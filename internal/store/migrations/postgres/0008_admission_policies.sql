-- Issue 4: admission policy documents served by central to `bulwark
-- admission serve --policy-from-server`. One row per named document (the
-- latest text only; the audit log keeps who changed what). version is the
-- generation that last wrote the row; admission_policy_generation counts
-- every write and delete, and is the ETag of the whole set.
CREATE TABLE admission_policies (
    name       TEXT PRIMARY KEY,
    yaml       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE admission_policy_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO admission_policy_generation (id, generation) VALUES (1, 0);
