package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/sensor"
	"github.com/bulwark-security/bulwark/internal/sensor/enrich"
	"github.com/bulwark-security/bulwark/internal/sensor/probe"
	"github.com/bulwark-security/bulwark/internal/sensor/probe/runctest"
)

// TestPreventUnknownSettledByUserSpace: the probe runs with PreventUnknown
// (drift is killed in any container no decision covers yet) and user space
// settles each container as it is attributed. Two real runc containers get
// a binary copied into their writable layer before the probe is loaded (no
// event of them has reached user space):
//   - A (containerd CRI annotations; image selected by the selector): every
//     drift exec is killed — the first ones by PreventUnknown or by the
//     SetPrevention its attribution from the runtime state triggered;
//   - B (plain, not selected): released (AllowDrift) once its first event
//     is processed (until then the kernel kills its drift: not asserted,
//     runc's setns events in B's cgroup may be processed before the exec);
//     the next attempt runs.
//
// PreventUnknown is machine-wide while the probe is loaded (other
// containers on this machine are released as soon as their first event is
// processed); the test keeps that window short, and runs only when asked
// (scripts/test.sh runs it alone, after every other package, so that no
// other test's container is in that window).
func TestPreventUnknownSettledByUserSpace(t *testing.T) {
	needSensor(t)
	if os.Getenv("BULWARK_PROBE_GLOBAL_TESTS") != "1" {
		t.Skip("machine-wide prevention: set BULWARK_PROBE_GLOBAL_TESTS=1 (scripts/test.sh runs it alone)")
	}
	state := filepath.Join(t.TempDir(), "containerd", "runc", "k8s.io")
	a := runctest.Start(t, runctest.Options{RuncRoot: state, Annotations: map[string]string{
		"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-name": "web-0",
		"io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.container-name": "app",
		"io.kubernetes.cri.image-name": "registry.example.com/shop/web:1.2"}})
	b := runctest.Start(t, runctest.Options{RuncRoot: state})
	ctx := context.Background()
	for _, c := range []*runctest.Container{a, b} {
		// Before the probe is loaded: the probe sees nothing of this.
		if r, err := c.Sh(ctx, "cp /bin/busybox /tmp/touch"); err != nil || r.ExitCode != 0 {
			t.Fatalf("plant: %+v %v", r, err)
		}
	}

	rt := enrich.NewRuntime(enrich.RuntimeConfig{Roots: []string{state}})
	prev := &sensor.Prevention{Selectors: []sensor.Selector{{Image: "registry.example.com/shop/*"}}, Unknown: true}
	en := enrich.New(enrich.Config{Resolvers: []enrich.Resolver{rt}, OnAttributed: prev.Consider})
	allowed := make(chan string, 64)
	pl := runPipelineWith(t, probe.Config{PreventUnknown: true}, en, prev, nil)
	prev.OnAllow = func(id string, _ uint64) { allowed <- id }
	// The probe's own cgroup resolver knows each container's cgroup from
	// its events (cheaper than walking the cgroup tree).
	if r, ok := pl.p.Containers().(interface{ CgroupIDOf(string) (uint64, bool) }); ok {
		prev.CgroupID = func(id string) (uint64, error) {
			if cg, ok := r.CgroupIDOf(id); ok {
				return cg, nil
			}
			return sensor.CgroupIDFromFS("")(id)
		}
	}
	ran := func(c *runctest.Container, marker string) bool {
		// busybox copied as "touch" runs its touch applet
		if _, err := c.Exec(ctx, "/tmp/touch", "/tmp/"+marker); err != nil {
			t.Logf("exec: %v", err) // a killed exec may be reported as a runc failure
		}
		_, err := os.Stat(filepath.Join(c.Upper, "tmp", marker))
		return err == nil
	}
	if ran(a, "a1") {
		t.Error("A: first drift exec ran (not prevented before attribution)")
	}
	// B's first drift exec is killed only if user space has not released B
	// yet: runc's own setns calls in B's cgroup are events too, and may be
	// processed first (B is then allowed before the exec). Either is right.
	t.Logf("B: first drift exec ran: %v", ran(b, "b1"))
	select {
	case id := <-allowed:
		if id != b.ID {
			// another container on the machine released first; wait for B
			deadline := time.After(10 * time.Second)
			for id != b.ID {
				select {
				case id = <-allowed:
				case <-deadline:
					t.Fatal("B never released")
				}
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("B never released from prevention")
	}
	if !ran(b, "b2") {
		t.Error("B: drift still killed after user space released it")
	}
	if ran(a, "a2") {
		t.Error("A: drift ran in a selected container")
	}
	if !prev.Enabled(a.ID) || prev.Enabled(b.ID) {
		t.Errorf("decisions: A prevented %v, B prevented %v", prev.Enabled(a.ID), prev.Enabled(b.ID))
	}
}
