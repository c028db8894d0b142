// Package e2e holds the sensor's end-to-end tests: the real eBPF probe and
// real runc containers (root), a real containerd for attribution through
// its CRI socket, a real kube-apiserver for pod attribution,
// and a real central (internal/server on SQLite) receiving the spooled
// alerts across a crash. It has no non-test code; it is a separate package
// so a broken probe or server build never stops internal/sensor's own tests.
package e2e
