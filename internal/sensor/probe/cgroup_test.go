package probe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/sensor/probe/runctest"
)

func TestParseContainerID(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	cases := []struct {
		path string
		want string
	}{
		{"/kubepods/burstable/pod0e7c1b9a-1111-2222-3333-444455556666/" + id, id},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0e7c1b9a_1111.slice/cri-containerd-" + id + ".scope", id},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podx.slice/crio-" + id + ".scope", id},
		{"/kubepods/besteffort/podx/crio-" + id, id},
		{"/system.slice/docker-" + id + ".scope", id},
		{"/docker/" + id, id},
		{"/machine.slice/libpod-" + id + ".scope/container", id},
		{"/bulwark-runctest/" + id, id},
		{"/machine.slice/libpod-conmon-" + id + ".scope", ""},
		{"/system.slice/containerd.service", ""},
		{"/user.slice/user-0.slice/session-1.scope", ""},
		{"/", ""},
		{"", ""},
		{"/docker/" + strings.ToUpper(id), ""},
		{"/docker/" + id[:63], ""},
	}
	for _, c := range cases {
		got, ok := ParseContainerID(c.path)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("ParseContainerID(%q) = %q, %v; want %q", c.path, got, ok, c.want)
		}
	}
}

func TestCgroupResolver(t *testing.T) {
	needKernel(t, true)
	r, err := NewCgroupResolver("")
	if err != nil {
		t.Skipf("no cgroup2: %v", err)
	}
	if got := r.ContainerID(r.rootID); got != HostID {
		t.Errorf("root cgroup: %q", got)
	}
	c := runctest.Start(t, runctest.Options{})
	cg, err := CgroupID(c.CgroupDir(r.Root()))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.ContainerID(cg); got != c.ID {
		t.Errorf("container cgroup %d: %q, want %q", cg, got, c.ID)
	}
	if got, ok := r.CgroupIDOf(c.ID); !ok || got != cg {
		t.Errorf("CgroupIDOf: %d %v, want %d", got, ok, cg)
	}
	r.Forget(cg)
	if _, ok := r.CgroupIDOf(c.ID); ok {
		t.Error("CgroupIDOf after Forget")
	}
	// The walk fallback finds the same path as the file handle.
	p1, err1 := r.pathByHandle(cg)
	p2, err2 := r.pathByWalk(cg)
	if err1 != nil || err2 != nil || p1 != p2 || p1 != c.CgroupPath {
		t.Errorf("paths: handle %q %v, walk %q %v, want %q", p1, err1, p2, err2, c.CgroupPath)
	}
	// A cgroup that does not exist is unknown, not host.
	dir := filepath.Join(r.Root(), "bulwark-probe-gone")
	if err := os.Mkdir(dir, 0o755); err == nil {
		gone, _ := CgroupID(dir)
		os.Remove(dir)
		if got := r.ContainerID(gone); got != "" {
			t.Errorf("removed cgroup: %q", got)
		}
	}
}
