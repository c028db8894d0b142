package probe

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor/probe/runctest"
)

// parentCgroup creates an empty cgroup under the cgroup2 root, as a pod's
// cgroup exists before its containers, and returns its path (relative to
// the root) and id. It is removed at cleanup.
func parentCgroup(t *testing.T, root string) (string, uint64) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	rel := "/bulwark-prevent-" + hex.EncodeToString(b[:])
	dir := filepath.Join(root, rel)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	id, err := CgroupID(dir)
	if err != nil {
		t.Fatal(err)
	}
	return rel, id
}

// firstExecDrift starts a container whose init process — the container's
// very first exec — is a busybox copy in the writable layer (drift) that
// writes /marker, and returns the container and its first exec's event.
func firstExecDrift(t *testing.T, col *collector, cgroupParent, exe string) (*runctest.Container, *seen) {
	t.Helper()
	bb, err := runctest.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	c := runctest.Start(t, runctest.Options{
		CgroupParent: cgroupParent,
		UpperCopies:  map[string]string{exe: bb},
		// argv[0]'s base name "busybox" makes the copy run the sh applet.
		Args: []string{exe, "sh", "-c", "echo ran > /marker; exec sleep 3600"},
	})
	s := col.wait(t, "first exec of "+exe, 10*time.Second, func(s *seen) bool {
		return s.ev.Type == rules.EventExecve && s.ev.Proc.ExePath == exe
	})
	if s != nil && s.ev.Container.ID != c.ID {
		t.Errorf("first exec attributed to %q, want container %s", s.ev.Container.ID, c.ID)
	}
	if s != nil && !s.ev.Proc.ExeUpperLayer {
		t.Errorf("first exec of %s not seen as upper-layer drift", exe)
	}
	return c, s
}

func markerWritten(t *testing.T, c *runctest.Container) bool {
	t.Helper()
	// The init writes the marker right after its exec; give it a moment.
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(c.Upper, "marker")); err == nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDriftPreventedFromFirstExec: prevention decided on a parent cgroup
// before the container exists holds for the container's very first exec
// (its init process), which user space has had no chance to attribute; an
// exemption on a deeper cgroup overrides it; without a decision the drift
// runs (so the test can fail).
func TestDriftPreventedFromFirstExec(t *testing.T) {
	needKernel(t, true)
	p := load(t, Config{})
	root, err := CgroupRoot()
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, p, nil, func(e *rules.Event) bool { return e.Type == rules.EventExecve })

	t.Run("no decision: runs", func(t *testing.T) {
		parent, _ := parentCgroup(t, root)
		c, s := firstExecDrift(t, col, parent, "/drift0/busybox")
		if s != nil && Prevented(&s.ev) {
			t.Error("drift prevented without a decision")
		}
		if !markerWritten(t, c) {
			t.Error("drift init did not run without prevention: the test cannot tell prevention apart")
		}
	})

	t.Run("parent prevented: killed at first exec", func(t *testing.T) {
		parent, id := parentCgroup(t, root)
		if err := p.SetPrevention(id, true); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.SetPrevention(id, false) })
		c, s := firstExecDrift(t, col, parent, "/drift1/busybox")
		if s != nil && !Prevented(&s.ev) {
			t.Error("first exec event not marked prevented")
		}
		if markerWritten(t, c) {
			t.Error("prevented drift init ran: marker written")
		}
	})

	t.Run("deeper exemption wins", func(t *testing.T) {
		grand, gid := parentCgroup(t, root)
		if err := p.SetPrevention(gid, true); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.SetPrevention(gid, false) })
		dir := filepath.Join(root, grand, "allowed")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(dir) })
		aid, err := CgroupID(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AllowDrift(aid, true); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.AllowDrift(aid, false) })
		c, s := firstExecDrift(t, col, grand+"/allowed", "/drift2/busybox")
		if s != nil && Prevented(&s.ev) {
			t.Error("drift prevented under an exemption")
		}
		if !markerWritten(t, c) {
			t.Error("exempted drift init did not run")
		}
	})

	// PreventUnknown is machine-wide for a moment: any other container on
	// this machine that runs an upper-layer binary meanwhile (another test
	// package's) is killed too. scripts/test.sh runs it alone, after the
	// other packages, with BULWARK_PROBE_GLOBAL_TESTS=1.
	t.Run("prevent unknown: killed at first exec", func(t *testing.T) {
		if os.Getenv("BULWARK_PROBE_GLOBAL_TESTS") != "1" {
			t.Skip("machine-wide prevention: set BULWARK_PROBE_GLOBAL_TESTS=1 (scripts/test.sh runs it alone)")
		}
		parent, _ := parentCgroup(t, root)
		if err := p.SetPreventUnknown(true); err != nil {
			t.Fatal(err)
		}
		c, s := firstExecDrift(t, col, parent, "/drift3/busybox")
		if err := p.SetPreventUnknown(false); err != nil {
			t.Fatal(err)
		}
		if s != nil && !Prevented(&s.ev) {
			t.Error("first exec event not marked prevented")
		}
		if markerWritten(t, c) {
			t.Error("prevented drift init ran: marker written")
		}
	})
}
