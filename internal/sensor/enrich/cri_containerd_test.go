package enrich

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/sensor/enrich/critest"
)

// TestCRIContainerd: the CRI resolver against a real containerd 1.6 (CRI
// plugin, runc shim), with pods and containers created through the CRI as
// the kubelet creates them. Root; skipped elsewhere, required in CI.
func TestCRIContainerd(t *testing.T) {
	c := critest.Start(t)
	pod := c.RunPod(t, "web-5f7b9-x2x4q", "shop", map[string]string{"app": "web"})
	app := c.StartContainer(t, pod, critest.ContainerOptions{Name: "app", KubeletLabels: true})
	debug := c.StartContainer(t, pod, critest.ContainerOptions{Name: "debug"}) // crictl-style: no labels
	cri := newTestCRI(t, c.Socket, CRIConfig{NegTTL: 100 * time.Millisecond})
	ctx := context.Background()

	base := Info{Pod: pod.Name, Namespace: pod.Namespace, PodUID: pod.UID, Image: c.Busybox, ImageDigest: c.BusyboxDigest,
		Labels: []string{"app:web"}}
	for _, tc := range []struct {
		id, name string
		want     Info
	}{
		{app, "kubelet-labelled container", with(base, func(i *Info) { i.ContainerName = "app" })},
		// No labels: the pod comes from the sandbox's metadata.
		{debug, "container without labels", with(base, func(i *Info) { i.ContainerName = "debug" })},
		// The pause container: not a CRI container, recognised as the sandbox.
		{pod.ID, "sandbox", Info{Pod: pod.Name, Namespace: pod.Namespace, PodUID: pod.UID, Labels: []string{"app:web"}, Sandbox: true}},
	} {
		i, err := cri.Resolve(ctx, tc.id)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, *i); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}

	// The runtime-state resolver on the same containers: the annotations
	// containerd's CRI plugin really writes (runc state under the shim's
	// --root), no socket involved.
	rt := NewRuntime(RuntimeConfig{Roots: []string{c.RuncRoot}})
	if i, err := rt.Resolve(ctx, app); err != nil {
		t.Errorf("runtime state of a containerd container: %v", err)
	} else if diff := cmp.Diff(Info{Pod: pod.Name, Namespace: pod.Namespace, PodUID: pod.UID, ContainerName: "app", Image: c.Busybox}, *i); diff != "" {
		t.Errorf("runtime state (-want +got):\n%s", diff)
	}
	if i, err := rt.Resolve(ctx, pod.ID); err != nil || !i.Sandbox || i.Pod != pod.Name {
		t.Errorf("runtime state of the sandbox: %+v %v", i, err)
	}

	// Removed before it is asked: a clean miss.
	gone := c.StartContainer(t, pod, critest.ContainerOptions{Name: "short", KubeletLabels: true})
	c.RemoveContainer(t, gone)
	if _, err := cri.Resolve(ctx, gone); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrCRIUnavailable) {
		t.Errorf("removed container: %v", err)
	}

	// containerd stops: lookups fail cleanly and fast (the pods keep
	// running); it restarts: the same resolver answers again.
	c.Stop()
	cri.Forget(debug)
	start := time.Now()
	if _, err := cri.Resolve(ctx, debug); !errors.Is(err, ErrCRIUnavailable) {
		t.Errorf("containerd stopped: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("lookup against a stopped runtime took %v", d)
	}
	c.Restart(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		i, err := cri.Resolve(ctx, debug)
		if err == nil {
			if i.ContainerName != "debug" || i.Pod != pod.Name {
				t.Errorf("after restart: %+v", i)
			}
			t.Logf("answered again %v after containerd was stopped (stop, failed lookup, restart included)", time.Since(start))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer 15s after containerd restarted: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := cri.Stats(); s.Errors == 0 || s.NotFound == 0 {
		t.Errorf("stats do not show the outage and the miss: %+v", s)
	}
}

func with(i Info, f func(*Info)) Info { f(&i); return i }

// BenchmarkCRIResolveContainerd: one uncached lookup of a kubelet-labelled
// container against a real containerd (ContainerStatus + ListContainers,
// the sandbox cached) — the cost paid once per container, off the event path.
func BenchmarkCRIResolveContainerd(b *testing.B) {
	c := critest.Start(b)
	pod := c.RunPod(b, "bench-0", "bench", map[string]string{"app": "bench"})
	id := c.StartContainer(b, pod, critest.ContainerOptions{Name: "app", KubeletLabels: true})
	cri := newTestCRI(b, c.Socket, CRIConfig{})
	ctx := context.Background()
	if _, err := cri.Resolve(ctx, id); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		cri.Forget(id)
		if _, err := cri.Resolve(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
