// Package alerts is the wire shape of one detection as every source sends
// it to central: the sensor (runtime rules), the audit receiver (Kubernetes
// audit-log rules), the admission webhook (denials and warnings), posture and
// the scanner. It also holds the response-action shapes the in-cluster
// responder exchanges with central.
//
// It exists so that senders build, validate and fingerprint alerts without
// importing central's store or HTTP layer: the sensor links this package and
// nothing of central. The JSON shape is the "Alert ingest" contract
// (POST /api/v1/alerts); change it only by adding fields.
//
// This package must not import internal/store, internal/server, net/http or
// any database driver (TestImports checks). It depends on the standard
// library only.
package alerts
