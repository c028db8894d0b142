package e2e

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/sensor"
	"github.com/bulwark-security/bulwark/internal/sensor/enrich"
	"github.com/bulwark-security/bulwark/internal/sensor/probe/runctest"
)

// TestRuntimeStateAttribution: two real runc containers. The first is
// started the way containerd's shim starts a Kubernetes container: runc
// --root <state>/containerd/runc/k8s.io, with a bundle whose config.json
// carries the annotations containerd's CRI plugin writes
// (pkg/cri/annotations: sandbox-name, sandbox-namespace, container-name,
// image-name, container-type). With no Kubernetes API at all, its alerts
// carry pod, namespace, container and image from the runtime's state. The
// second is a plain runc container (no annotations): its alerts carry the
// container id and nothing invented.
func TestRuntimeStateAttribution(t *testing.T) {
	needSensor(t)
	state := t.TempDir()
	k8sRoot := filepath.Join(state, "containerd", "runc", "k8s.io")
	plainRoot := filepath.Join(state, "runc")
	cri := runctest.Start(t, runctest.Options{RuncRoot: k8sRoot, Annotations: map[string]string{
		"io.kubernetes.cri.container-type":        "container",
		"io.kubernetes.cri.sandbox-id":            "5b1f0c2a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b",
		"io.kubernetes.cri.sandbox-name":          "web-5f7b9-x2x4q",
		"io.kubernetes.cri.sandbox-namespace":     "shop",
		"io.kubernetes.cri.sandbox-uid":           "0d6c5b4a-3f2e-1d0c-9b8a-7f6e5d4c3b2a",
		"io.kubernetes.cri.container-name":        "app",
		"io.kubernetes.cri.image-name":            "registry.example.com/shop/web:1.2",
		"io.kubernetes.cri.sandbox-log-directory": "/var/log/pods/shop_web",
	}})
	plain := runctest.Start(t, runctest.Options{RuncRoot: plainRoot})

	rt := enrich.NewRuntime(enrich.RuntimeConfig{Roots: []string{k8sRoot, plainRoot}})
	prev := &sensor.Prevention{Selectors: []sensor.Selector{{Image: "registry.example.com/shop/*"}}}
	en := enrich.New(enrich.Config{Resolvers: []enrich.Resolver{rt}, OnAttributed: prev.Consider})
	pl := runPipeline(t, en, prev, nil)
	ctx := context.Background()

	for _, c := range []*runctest.Container{cri, plain} {
		if _, err := c.Sh(ctx, "cat /etc/shadow >/dev/null"); err != nil {
			t.Fatal(err)
		}
	}
	if a := pl.sink.wait(t, "shadow read in the CRI container", func(a *alerts.Alert) bool {
		return a.Rule == "Shadow file accessed" && a.ContainerID == cri.ID
	}); a != nil {
		if a.Pod != "web-5f7b9-x2x4q" || a.Namespace != "shop" || a.Container != "app" || a.Image != "registry.example.com/shop/web:1.2" {
			t.Errorf("alert not attributed from the runtime state: pod=%q ns=%q container=%q image=%q", a.Pod, a.Namespace, a.Container, a.Image)
		}
		if a.ImageDigest != "" || a.Workload != "" {
			t.Errorf("invented digest/workload: %q %q", a.ImageDigest, a.Workload)
		}
	}
	if a := pl.sink.wait(t, "shadow read in the plain container", func(a *alerts.Alert) bool {
		return a.Rule == "Shadow file accessed" && a.ContainerID == plain.ID
	}); a != nil {
		if a.Pod != "" || a.Namespace != "" || a.Container != "" || a.Image != "" {
			t.Errorf("plain runc container got invented names: pod=%q ns=%q container=%q image=%q", a.Pod, a.Namespace, a.Container, a.Image)
		}
	}
	// The image selector (from the runtime's annotation, no Kubernetes API)
	// switched drift prevention on for the CRI container only.
	waitCounter(t, &pl.c.Prevented, 1, "drift prevention from the image selector")
	if !prev.Enabled(cri.ID) || prev.Enabled(plain.ID) {
		t.Errorf("prevention: cri %v plain %v", prev.Enabled(cri.ID), prev.Enabled(plain.ID))
	}
	if s := rt.Stats(); s.Errors != 0 {
		t.Errorf("runtime lookups failed: %+v", s)
	}
}
