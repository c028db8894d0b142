// Package audit is Bulwark's Kubernetes audit-log threat detection: it
// receives audit.k8s.io/v1 events — from the API server's webhook backend
// (Receiver, an http.Handler for EventList POSTs authenticated by client
// certificate or bearer token) or from an audit log file that a managed
// cluster exports (Follower, JSON lines, following rotation, with a durable
// offset) — evaluates them with the rules engine over the ka.* fields,
// runs the one stateful detector that a rule cannot express (a service
// account used from a source IP it was not seen using while learning), and
// turns matches into alerts.Alert handed to a Sink (central's store in
// process, or POST /api/v1/alerts from `bulwark audit watch`).
//
// Delivery: nothing accepted is lost. The Receiver answers 200 only after
// the batch's alerts were handed to the Sink; a full queue answers 429 and a
// failing Sink 503, and the API server's webhook backend retries both. The
// Follower commits its offset only after the Sink took the alerts of the
// lines before it. Replays are harmless: alert ids are derived from the
// cluster, audit id, stage and rule, so a replayed batch makes the same ids
// and the store keeps one; a bounded window of recently processed audit ids
// also skips replays before evaluation.
//
// It must not import internal/server, internal/store or internal/cli: the
// server and the CLI wire it, and the store is reached through Sink.
package audit
