-- Issue 7: the audit service-account source detector's learned state
-- (service account -> source IPs), so a central restart neither learns
-- again (silent on a stolen token used from a new address during the new
-- learning period) nor forgets which addresses it already alerted on.
-- account_first is when the account was first seen (its learning period
-- runs from there), repeated on each of its rows. alerted_by is "" for an
-- address learned while learning, else the audit id of the request that
-- alerted on it. Rows not seen for the detector's forget period are
-- deleted (age-out).
CREATE TABLE audit_account_sources (
    cluster       TEXT NOT NULL,
    account       TEXT NOT NULL,
    ip            TEXT NOT NULL,
    account_first TIMESTAMPTZ NOT NULL,
    alerted_by    TEXT NOT NULL DEFAULT '',
    last_seen     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (cluster, account, ip)
);
CREATE INDEX audit_account_sources_last_seen ON audit_account_sources (last_seen);
