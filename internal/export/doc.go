// Package export delivers what central accepts — alerts, and optionally
// scan findings and posture results — to the tools a team already runs:
// an HTTPS webhook (HMAC signed), syslog (RFC 5424 or CEF over UDP, TCP or
// TLS), Splunk HEC, Elasticsearch/OpenSearch, Kafka, Slack and Microsoft
// Teams, with OCSF-shaped JSON as a format for webhooks and Kafka.
//
// Delivery is durable: records are appended once to the store's export
// log in the transaction that accepts them (store.EnqueueExports), and the
// Dispatcher's per-export workers lease their export with a fencing token,
// read the records after the export's durable cursor that its filter
// takes, deliver them through an Exporter and move the cursor past them,
// so a receiver outage or a central restart loses nothing. The log is
// purged once every export's cursor is past a record (a disabled export
// holds it for DisabledRetention only). Receivers that take an idempotency
// key (webhook Idempotency-Key, Elasticsearch _id with op "create", Kafka
// transactions with a stable transactional id, across restarts, for
// read_committed consumers) see each record once; the others
// (syslog, Splunk HEC, Slack, Teams) at least once. A failed batch backs the
// whole export off (exponential, with jitter) and is retried before
// anything queued behind it; records refused for good, or older than the
// export's max age, become dead letters listed and retried through the API.
//
// Exporters are small (Name, Deliver) and built from a Config by New, an
// explicit switch over the types in Types: no registration from init.
//
// This package must not import internal/server or internal/cli (the server
// wires it, not the other way round). It imports internal/store for the
// export log and internal/alerts for the record shape.
package export
