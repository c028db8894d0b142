// Package posture measures Kubernetes objects against security benchmarks:
// the upstream Pod Security Standards checks (k8s.io/pod-security-admission),
// Bulwark's own data-plane hardening, RBAC-risk and network-exposure controls,
// each mapped to the CIS Kubernetes Benchmark, the NSA-CISA Kubernetes
// Hardening Guidance, the Pod Security Standards level and MITRE ATT&CK for
// containers.
//
// The package decodes manifests (Decoder), evaluates them (Evaluator) and
// writes reports (Write). It works on objects only: it must not import
// client-go or anything that talks to a cluster, nor internal/cli; the cluster
// and node targets feed it objects they fetched themselves.
package posture
