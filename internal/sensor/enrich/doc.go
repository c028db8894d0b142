// Package enrich attributes a container id to its pod, namespace, image,
// image digest, labels and workload, and caches the answer with a TTL so
// the sensor's hot path is a map lookup.
//
// Resolvers answer a container id. A Local resolver (the Kubernetes pod
// informer: an in-memory index of this node's pods; the runtime state: one
// tmpfs read per container, then cached) is asked inline on a cache miss,
// because its answer is cheap and bounded; any other resolver is
// asked asynchronously by a bounded worker queue, so a miss never blocks an
// event — the event goes on with its container id only, and later events of
// the container are enriched. A full lookup queue is a counted drop.
//
// Resolvers, in the sensor's order: Runtime reads the container runtime's
// own state on the node (runc state.json / crun status and the CRI
// annotations containerd and CRI-O write into the OCI config: pod,
// namespace, container, image; Local); CRI asks the runtime's CRI socket
// (k8s.io/cri-api runtime.v1 over gRPC: ContainerStatus, ListContainers,
// PodSandboxStatus — pod uid and labels, the image digest the runtime
// resolved, the sandbox container recognised; asynchronous); Kube indexes
// the node's pods from the API (workload, labels, digest; Local). Answers
// are merged in resolver order (Merge). Runtime and CRI keep their own
// bounded LRU of answers (answerCache). critest runs a real containerd
// for the tests.
//
// This package must not import the probe or the rules engine's internals;
// it fills rules.Event fields and nothing else.
package enrich
