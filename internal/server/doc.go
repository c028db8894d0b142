// Package server is central: `bulwark server`. It serves the versioned JSON
// REST API under /api/v1 (described by the OpenAPI document it serves at
// /api/v1/openapi.json), receives registry push notifications (CNCF
// Distribution and Harbor), runs the durable scan queue with a bounded pool
// of workers, sweeps registries that send no notifications, re-matches
// every stored SBOM when the vulnerability database changes, and exposes
// /healthz, /readyz and Prometheus /metrics. The web console is mounted at
// "/" from whatever http.Handler the caller passes in Deps.Console, so this
// package builds and is tested without it.
//
// Everything is reached through one route table (routes.go): the path,
// the roles allowed, whether the call mutates (and is then written to the
// audit log) — the OpenAPI document is checked against that table by a
// test, and so are the role checks. Store errors reach HTTP through one
// mapping (errors.go).
//
// Dependencies are passed in (New(cfg, deps)); there is no package-level
// state and no global logger or metrics registry.
//
// It must not import internal/cli or internal/console: the CLI wires this
// package, and the console is mounted through an interface.
package server
