// Package k8s holds what Bulwark's Kubernetes-facing commands share
// (admission, posture cluster, respond): loading a client configuration the
// way kubectl users expect. Subpackage k8stest runs a real kube-apiserver
// for tests.
//
// It must not import Bulwark's store, server or CLI packages: those import
// it, not the other way round.
package k8s
