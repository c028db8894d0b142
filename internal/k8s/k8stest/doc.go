// Package k8stest starts a real Kubernetes control plane for tests: an etcd
// and a kube-apiserver, both built from the Go module proxy at the version
// in KubeVersion (tools/kube, a separate Go module, so building Bulwark never
// compiles Kubernetes). Admission webhooks, the audit receiver, posture checks
// and response actions are tested against the real API server's behaviour —
// RBAC, admission chain, audit policy and webhook batching — instead of a
// fake clientset that would agree with whatever the code under test expects.
//
// Only etcd and kube-apiserver run: no controller-manager, no scheduler, no
// kubelet. So Pods are stored and admitted but stay Pending, Deployments do
// not create ReplicaSets, namespaces stay Terminating after deletion, and no
// ServiceAccount is created automatically (Namespace creates the "default"
// one, which the ServiceAccount admission plugin requires for every Pod).
// Tests that need owner chains create the ReplicaSet and Pod themselves.
// The aggregated ClusterRoles (admin, edit, view) exist but have no rules,
// since their aggregation controller is part of the controller-manager:
// tests bind roles of their own.
//
// The binaries are built once by `go run ./internal/k8s/k8stest/cmd/build-kube`
// (scripts/test.sh does it) into BinDir. When they are missing Start skips the
// test with the command to run, unless BULWARK_REQUIRE_KUBE=1 (CI), where it
// fails. A cluster starts in a few seconds; each Start is a separate cluster,
// torn down (process group killed) when the test ends.
//
// This package is for tests and the build-kube command only; production code
// must not import it.
package k8stest
