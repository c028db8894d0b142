// Package sensor is the user-space pipeline of `bulwark sensor`: events from
// a Source (the eBPF probe, or a replay of recorded JSON-lines events) go
// through a bounded queue to enrichment (pod, namespace, image), the Falco
// rules engine and the built-in network detectors, and the resulting alerts
// go to JSON-lines outputs and, through a disk spool, to central.
//
// Every queue is bounded and never blocks the producer: the ring-buffer
// reader hands an event over with a non-blocking send, and a full queue is a
// counted drop (Prometheus counters, see Metrics), never back-pressure into
// the kernel reader. The per-event path (copy, enrichment cache hit, rule
// evaluation of a non-matching event) does not allocate.
//
// Besides the rules, built-in detectors cover what needs state or lists:
// threat-intel connects, unusual listeners (the learned baseline persisted
// across restarts, listener_state.go) and script drift (an interpreter
// running a script from the container's writable layer, checked off the
// event path through procfs, scriptdrift.go).
//
// Subpackages: enrich (container id → pod/namespace/image from the runtime's
// state and the pod informer, cached), intel
// (threat-intelligence lists and CIDR lookup), spool (the disk queue to
// central). The kernel side is internal/sensor/probe; this package reaches it
// only through the Source and Preventer interfaces so the pipeline is tested
// with replayed events too.
//
// This package must not import internal/store or internal/server: it talks
// to central over HTTP only (POST /api/v1/alerts with internal/alerts types).
package sensor
