-- Bulwark central schema, version 1 (PostgreSQL).
-- Times are timestamptz; JSON is jsonb; secrets are bytea sealed by the
-- application (AES-256-GCM) and never stored in the clear.

CREATE TABLE registries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    url              TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('distribution', 'harbor', 'generic')),
    repositories     JSONB NOT NULL DEFAULT '[]',
    insecure         BOOLEAN NOT NULL DEFAULT FALSE,
    credentials      BYTEA,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    last_sweep_at    TIMESTAMPTZ,
    last_sweep_error TEXT NOT NULL DEFAULT ''
);

CREATE TABLE images (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest          TEXT NOT NULL UNIQUE,
    config_digest   TEXT NOT NULL DEFAULT '',
    platform        TEXT NOT NULL DEFAULT '',
    os              TEXT NOT NULL DEFAULT '',
    size            BIGINT NOT NULL DEFAULT 0,
    layers          JSONB NOT NULL DEFAULT '[]',
    first_seen      TIMESTAMPTZ NOT NULL,
    last_seen       TIMESTAMPTZ NOT NULL,
    last_scanned_at TIMESTAMPTZ,
    last_matched_at TIMESTAMPTZ,
    package_count   INTEGER NOT NULL DEFAULT 0,
    critical        INTEGER NOT NULL DEFAULT 0,
    high            INTEGER NOT NULL DEFAULT 0,
    medium          INTEGER NOT NULL DEFAULT 0,
    low             INTEGER NOT NULL DEFAULT 0,
    unknown         INTEGER NOT NULL DEFAULT 0,
    kev             INTEGER NOT NULL DEFAULT 0,
    fixable         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX images_last_seen ON images (last_seen);

CREATE TABLE image_refs (
    image_id   BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    registry   TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag        TEXT NOT NULL DEFAULT '',
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (image_id, registry, repository, tag)
);
CREATE INDEX image_refs_repository ON image_refs (registry, repository, tag);

CREATE TABLE image_sightings (
    image_id   BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    cluster    TEXT NOT NULL,
    namespace  TEXT NOT NULL DEFAULT '',
    workload   TEXT NOT NULL DEFAULT '',
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (image_id, cluster, namespace, workload)
);
CREATE INDEX image_sightings_cluster ON image_sightings (cluster, namespace);

CREATE TABLE sboms (
    image_id      BIGINT PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    encoding      TEXT NOT NULL,
    data          BYTEA NOT NULL,
    content_hash  BYTEA NOT NULL,
    package_count INTEGER NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE image_packages (
    image_id  BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    ecosystem TEXT NOT NULL,
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    type      TEXT NOT NULL DEFAULT '',
    purl      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (image_id, ecosystem, name, version)
);
CREATE INDEX image_packages_name ON image_packages (name, ecosystem);

CREATE TABLE scans (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id      BIGINT REFERENCES images (id) ON DELETE SET NULL,
    digest        TEXT NOT NULL DEFAULT '',
    target_kind   TEXT NOT NULL DEFAULT '',
    target_name   TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    error         TEXT NOT NULL DEFAULT '',
    triggered_by  TEXT NOT NULL DEFAULT '',
    tool_name     TEXT NOT NULL DEFAULT '',
    tool_version  TEXT NOT NULL DEFAULT '',
    db_built      TIMESTAMPTZ,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    duration_ms   BIGINT NOT NULL DEFAULT 0,
    package_count INTEGER NOT NULL DEFAULT 0,
    finding_count INTEGER NOT NULL DEFAULT 0,
    new_findings  INTEGER NOT NULL DEFAULT 0,
    fixed_findings INTEGER NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX scans_digest ON scans (digest, id);
CREATE INDEX scans_created ON scans (created_at);

CREATE TABLE findings (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id          BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    vuln_id           TEXT NOT NULL,
    aliases           TEXT NOT NULL DEFAULT '',
    ecosystem         TEXT NOT NULL DEFAULT '',
    package_name      TEXT NOT NULL,
    package_version   TEXT NOT NULL DEFAULT '',
    package_type      TEXT NOT NULL DEFAULT '',
    location          TEXT NOT NULL DEFAULT '',
    installed_version TEXT NOT NULL DEFAULT '',
    fixed_versions    JSONB NOT NULL DEFAULT '[]',
    fixable           BOOLEAN NOT NULL DEFAULT FALSE,
    severity          SMALLINT NOT NULL CHECK (severity BETWEEN 0 AND 4),
    cvss_score        DOUBLE PRECISION NOT NULL DEFAULT 0,
    kev               BOOLEAN NOT NULL DEFAULT FALSE,
    epss              DOUBLE PRECISION NOT NULL DEFAULT 0,
    summary           TEXT NOT NULL DEFAULT '',
    matched_by        TEXT NOT NULL DEFAULT '',
    first_seen        TIMESTAMPTZ NOT NULL,
    last_seen         TIMESTAMPTZ NOT NULL,
    resolved_at       TIMESTAMPTZ,
    UNIQUE (image_id, vuln_id, ecosystem, package_name, package_version, location)
);
CREATE INDEX findings_vuln ON findings (vuln_id);
CREATE INDEX findings_open ON findings (image_id, severity) WHERE resolved_at IS NULL;

CREATE TABLE finding_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id        BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    finding_id      BIGINT NOT NULL REFERENCES findings (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('new', 'fixed', 'changed')),
    source          TEXT NOT NULL CHECK (source IN ('scan', 'rematch')),
    scan_id         BIGINT,
    vuln_id         TEXT NOT NULL,
    package_name    TEXT NOT NULL,
    package_version TEXT NOT NULL DEFAULT '',
    severity        SMALLINT NOT NULL,
    kev             BOOLEAN NOT NULL DEFAULT FALSE,
    at              TIMESTAMPTZ NOT NULL
);
CREATE INDEX finding_events_image ON finding_events (image_id, id);
CREATE INDEX finding_events_at ON finding_events (at);

CREATE TABLE clusters (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    description   TEXT NOT NULL DEFAULT '',
    labels        JSONB NOT NULL DEFAULT '{}',
    agent_version TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    last_seen     TIMESTAMPTZ
);

CREATE TABLE alerts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('sensor', 'audit', 'admission', 'scanner', 'posture')),
    rule        TEXT NOT NULL,
    severity    SMALLINT NOT NULL CHECK (severity BETWEEN 0 AND 4),
    title       TEXT NOT NULL DEFAULT '',
    cluster     TEXT NOT NULL DEFAULT '',
    namespace   TEXT NOT NULL DEFAULT '',
    workload    TEXT NOT NULL DEFAULT '',
    image_digest TEXT NOT NULL DEFAULT '',
    evidence    JSONB NOT NULL DEFAULT '{}',
    count       BIGINT NOT NULL DEFAULT 1,
    first_seen  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('new', 'acknowledged', 'resolved', 'false_positive')),
    status_by   TEXT NOT NULL DEFAULT '',
    status_at   TIMESTAMPTZ,
    status_note TEXT NOT NULL DEFAULT ''
);
-- One open alert per fingerprint: repeats increment its count.
CREATE UNIQUE INDEX alerts_open_fingerprint ON alerts (fingerprint) WHERE status IN ('new', 'acknowledged');
CREATE INDEX alerts_last_seen ON alerts (last_seen);

CREATE TABLE policies (
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    yaml       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (name, version)
);

CREATE TABLE api_tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         BYTEA NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'analyst', 'ci', 'agent')),
    created_at   TIMESTAMPTZ NOT NULL,
    created_by   TEXT NOT NULL DEFAULT '',
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'analyst', 'ci', 'agent')),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    last_login_at TIMESTAMPTZ
);

CREATE TABLE audit_log (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL DEFAULT '',
    details JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE jobs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         TEXT NOT NULL,
    dedup_key    TEXT,
    payload      JSONB NOT NULL DEFAULT '{}',
    state        TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at       TIMESTAMPTZ NOT NULL,
    lease_token  TEXT NOT NULL DEFAULT '',
    lease_until  TIMESTAMPTZ,
    claimed_by   TEXT NOT NULL DEFAULT '',
    last_error   TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ
);
-- Deduplication: one pending-or-running job per (kind, key), e.g. per digest.
CREATE UNIQUE INDEX jobs_dedup ON jobs (kind, dedup_key) WHERE state IN ('pending', 'running');
CREATE INDEX jobs_claim ON jobs (state, run_at);
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'running';
