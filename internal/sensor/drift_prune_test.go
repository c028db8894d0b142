package sensor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Prune on plain records: a gone cgroup loses its probe entry and record, a
// live one keeps both, a liveness error keeps both, unselected records go.
func TestPreventionPrune(t *testing.T) {
	rp := &recordingPreventer{}
	p := &Prevention{Preventer: rp, seen: map[string]decision{
		"gone":      {cg: 11, prevented: true},
		"released":  {cg: 12, allowed: true},
		"live":      {cg: 21, prevented: true},
		"unsure":    {cg: 31, prevented: true},
		"unchecked": {},
	}}
	alive := func(cg uint64) (bool, error) {
		switch cg {
		case 21:
			return true, nil
		case 31:
			return false, errors.New("EACCES")
		}
		return false, nil
	}
	n, err := p.Prune(alive)
	if n != 2 || err == nil {
		t.Fatalf("Prune = %d, %v; want 2 removed and the liveness error", n, err)
	}
	if on, ok := rp.calls[11]; !ok || on {
		t.Errorf("cgroup 11 not switched off in the probe: %v", rp.calls)
	}
	if on, ok := rp.calls[12]; !ok || on {
		t.Errorf("cgroup 12 (released) not removed from the probe: %v", rp.calls)
	}
	if _, ok := rp.calls[21]; ok {
		t.Errorf("live cgroup touched: %v", rp.calls)
	}
	if _, ok := rp.calls[31]; ok {
		t.Errorf("cgroup with unknown liveness touched: %v", rp.calls)
	}
	if got := p.Tracked(); got != 2 || !p.Enabled("live") || !p.Enabled("unsure") {
		t.Errorf("after prune: %d tracked (%v), want live and unsure", got, p.seen)
	}
}

// CgroupAlive against the real cgroup2 hierarchy: a cgroup made for the test
// is alive by its id, and gone after rmdir. Needs root (mkdir in cgroupfs,
// open_by_handle_at needs CAP_DAC_READ_SEARCH).
func TestCgroupAliveRealHierarchy(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("BULWARK_REQUIRE_SENSOR") == "1" {
			t.Fatal("BULWARK_REQUIRE_SENSOR=1 but not root")
		}
		t.Skip("needs root: creates a cgroup and opens it by handle")
	}
	root := "/sys/fs/cgroup"
	if st, err := os.Stat("/sys/fs/cgroup/unified"); err == nil && st.IsDir() {
		root = "/sys/fs/cgroup/unified" // hybrid hosts, as on these machines
	}
	var fsst syscall.Statfs_t
	if err := syscall.Statfs(root, &fsst); err != nil || fsst.Type != 0x63677270 { // CGROUP2_SUPER_MAGIC
		if os.Getenv("BULWARK_REQUIRE_SENSOR") == "1" {
			t.Fatalf("%s is not cgroup2 (%v)", root, err)
		}
		t.Skipf("%s is not a cgroup2 mount", root)
	}
	dir := filepath.Join(root, fmt.Sprintf("bulwark-prune-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := st.Sys().(*syscall.Stat_t).Ino
	alive, err := CgroupAlive("") // the default finds root as above
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := alive(id); !ok || err != nil {
		t.Fatalf("alive(%d) = %v, %v while the cgroup exists", id, ok, err)
	}
	rp := &recordingPreventer{}
	p := &Prevention{Preventer: rp, seen: map[string]decision{"c": {cg: id, prevented: true}}}
	if n, err := p.Prune(alive); n != 0 || err != nil || !p.Enabled("c") {
		t.Fatalf("Prune with the cgroup alive = %d, %v", n, err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if ok, err := alive(id); ok || err != nil {
		t.Fatalf("alive(%d) = %v, %v after rmdir", id, ok, err)
	}
	if n, err := p.Prune(alive); n != 1 || err != nil || p.Tracked() != 0 || rp.calls[id] {
		t.Fatalf("Prune after rmdir = %d, %v (tracked %d, probe calls %v)", n, err, p.Tracked(), rp.calls)
	}
}
