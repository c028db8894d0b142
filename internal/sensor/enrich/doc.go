// Package enrich attributes a container id to its pod, namespace, image,
// image digest, labels and workload, and caches the answer with a TTL so
// the sensor's hot path is a map lookup.
//
// Resolvers answer a container id. A Local resolver (the Kubernetes pod
// informer: an in-memory index of this node's pods) is asked inline on a
// cache miss, because its answer costs a map lookup; any other resolver is
// asked asynchronously by a bounded worker queue, so a miss never blocks an
// event — the event goes on with its container id only, and later events of
// the container are enriched. A full lookup queue is a counted drop.
//
// CRI: the containerd/CRI-O CRI socket is not used (k8s.io/cri-api pulls in
// gRPC; see internal/sensor/STATUS.md); the Kubernetes API covers pods, and
// containers started outside Kubernetes keep their container id only.
//
// This package must not import the probe or the rules engine's internals;
// it fills rules.Event fields and nothing else.
package enrich
