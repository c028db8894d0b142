// Package probe is the kernel side of Bulwark's node sensor: it loads the
// eBPF programs (tracepoints and tp_btf only — the attach points every
// supported kernel offers), reads their ring buffer and decodes each sample,
// without reflection, into a reused rules.Event. It also attributes events
// to containers (CgroupResolver: cgroup id → container id) and drives drift
// prevention (SetPrevention).
//
// Enrichment from the container runtime or Kubernetes (pod, namespace,
// image), rule evaluation policy and delivery belong to internal/sensor; this
// package must not import them, nor any network client.
package probe
