package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor/enrich"
	"github.com/bulwark-security/bulwark/internal/sensor/enrich/critest"
	"github.com/bulwark-security/bulwark/internal/sensor/probe"
)

// TestContainerdCRIAttribution: a real containerd (CRI plugin, runc shim,
// cgroupfs) runs a pod created through the CRI as the kubelet creates it;
// the real probe sees `cat /etc/shadow` run in its container (CRI ExecSync)
// and the alert carries the container id (from the cgroup containerd
// made) and the pod, namespace, container, image and digest — with the
// CRI resolver as the only resolver, so the names can only have come from
// containerd's CRI socket.
func TestContainerdCRIAttribution(t *testing.T) {
	needSensor(t)
	c := critest.Start(t)
	pod := c.RunPod(t, "web-5f7b9-x2x4q", "shop", map[string]string{"app": "web"})
	id := c.StartContainer(t, pod, critest.ContainerOptions{Name: "app", KubeletLabels: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The cgroup containerd made (cgroupfs driver: <cgroup_parent>/<id>)
	// maps back to the container id with the probe's parser.
	pid, err := c.InitPID(id)
	if err != nil {
		t.Fatal(err)
	}
	cg, err := unifiedCgroup(pid)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := probe.ParseContainerID(cg); !ok || got != id || !strings.HasPrefix(cg, pod.CgroupParent+"/") {
		t.Fatalf("cgroup %s → %q %v, want %s under %s", cg, got, ok, id, pod.CgroupParent)
	}

	cri, err := enrich.NewCRI(enrich.CRIConfig{Socket: c.Socket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cri.Close() })
	en := enrich.New(enrich.Config{Resolvers: []enrich.Resolver{cri}})
	pl := runPipeline(t, en, nil, nil)

	// The CRI resolver is asked off the event path: the container's first
	// events start the lookup, later events are attributed.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := c.Exec(ctx, id, "/bin/echo", "warm-up"); err != nil {
			t.Fatal(err)
		}
		if i := en.Enrich(&rules.Event{Container: rules.Container{ID: id}}); i != nil && i.Pod != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container never attributed through CRI (stats %+v, resolver %+v)", en.Stats(), cri.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	r, err := c.Exec(ctx, id, "/bin/cat", "/etc/shadow")
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("cat /etc/shadow: %+v %v", r, err)
	}
	if a := pl.sink.wait(t, "shadow read in the containerd container", func(a *alerts.Alert) bool {
		return a.Rule == "Shadow file accessed" && a.ContainerID == id
	}); a != nil {
		if a.Pod != pod.Name || a.Namespace != pod.Namespace || a.Container != "app" || a.Image != c.Busybox || a.ImageDigest != c.BusyboxDigest {
			t.Errorf("alert not attributed through CRI: pod=%q ns=%q container=%q image=%q digest=%q",
				a.Pod, a.Namespace, a.Container, a.Image, a.ImageDigest)
		}
	}
	if s := cri.Stats(); s.Errors != 0 {
		t.Errorf("CRI lookups failed: %+v", s)
	}
	if d := pl.c.EventsDropped.Load(); d != 0 {
		t.Errorf("%d events dropped", d)
	}
}

// unifiedCgroup is a process's cgroup v2 path ("0::/..." in /proc/<pid>/cgroup).
func unifiedCgroup(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 entry in /proc/%d/cgroup:\n%s", pid, b)
}
