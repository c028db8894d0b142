// Package admission is Bulwark's validating admission webhook: an HTTPS
// server that answers admission.k8s.io/v1 AdmissionReview requests for pods,
// every pod-creating controller and the pods/exec, attach and portforward
// CONNECT calls, by evaluating the loaded policies (internal/policy).
//
// Around the evaluator it owns what a webhook needs in production: a bounded,
// strict decoder that never admits what it could not read, a verdict cache
// keyed by image digest in front of central's findings API (with tags
// resolved to digests by the webhook), a documented behaviour when central is
// unreachable, batched decision records and alerts sent to central, serving
// certificates generated and rotated (or supplied and watched), and
// Prometheus metrics.
//
// It must not import internal/store, internal/server or internal/cli: it talks
// to central over HTTP only, like any agent in a cluster.
package admission
