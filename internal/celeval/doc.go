// Package celeval compiles and evaluates CEL expressions over Kubernetes
// objects, the way ValidatingAdmissionPolicy does: the same base
// environment and Kubernetes libraries (k8s.io/apiserver/pkg/cel), the same
// variable names (object, oldObject, request, namespaceObject, params) and a
// runtime cost budget so a user's expression cannot stall the caller.
//
// It exists so the admission webhook, the pipeline gate and posture's custom
// controls accept one expression language with one set of error messages.
// Expressions are compiled once at load time (errors carry line:column) and
// evaluated many times; a Program is safe for concurrent use.
//
// This package must not import Bulwark's domain packages: it is a leaf.
package celeval
