// Package fulldisk gives tests a real filesystem that runs out of space: a
// tmpfs of a chosen size mounted on a temporary directory, and a filler
// file that takes all but a little of it and can be removed to make room
// again. The kernel's ENOSPC, not a stand-in error, is what the code under
// test then meets (SQLite's SQLITE_FULL, PostgreSQL's disk_full, a short
// write in a spool).
//
// Mounting needs root (CAP_SYS_ADMIN). Without it tests skip with the
// reason, except under CI (CI=true) or BULWARK_REQUIRE_ROOT=1, where they
// fail: CI runs as root, so a full-disk test that does not run there is a
// broken setup, not a pass.
//
// It is a test-support package: only _test.go files import it. It must not
// import anything of Bulwark.
package fulldisk

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Disk is a mounted tmpfs; Dir is its root. It is unmounted when the test
// ends.
type Disk struct {
	Dir    string
	filler string
	tb     testing.TB
}

func required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("BULWARK_REQUIRE_ROOT") == "1"
}

// Mount mounts a tmpfs of size bytes on a new temporary directory.
func Mount(tb testing.TB, size int64) *Disk {
	tb.Helper()
	fail := tb.Skipf
	if required() {
		fail = tb.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("a full-disk test mounts a tmpfs and needs root (CI runs as root)")
	}
	dir, err := os.MkdirTemp("", "bulwark-fulldisk-")
	if err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV,
		fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		_ = os.Remove(dir)
		fail("mount a %d-byte tmpfs on %s: %v", size, dir, err)
	}
	tb.Cleanup(func() {
		// A lazy unmount: a server the test stopped may still close files.
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			tb.Errorf("unmount %s: %v", dir, err)
		}
		_ = os.Remove(dir)
	})
	return &Disk{Dir: dir, tb: tb}
}

// Chown gives the disk's root to a system user (PostgreSQL's server runs as
// "postgres" and must own a tablespace directory).
func (d *Disk) Chown(user string) {
	d.tb.Helper()
	if out, err := exec.Command("chown", user+":", d.Dir).CombinedOutput(); err != nil {
		d.tb.Fatalf("chown %s %s: %v: %s", user, d.Dir, err, bytes.TrimSpace(out))
	}
}

// Free returns the bytes still available.
func (d *Disk) Free() int64 {
	d.tb.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.Dir, &st); err != nil {
		d.tb.Fatalf("statfs %s: %v", d.Dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// Fill writes a filler file until only leave bytes (rounded to pages) are
// free. It returns the bytes it wrote.
func (d *Disk) Fill(leave int64) int64 {
	d.tb.Helper()
	d.filler = filepath.Join(d.Dir, "filler")
	f, err := os.OpenFile(d.filler, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.tb.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	var wrote int64
	for {
		n := d.Free() - leave
		if n <= 0 {
			return wrote
		}
		k, err := f.Write(chunk[:min(int64(len(chunk)), n)])
		wrote += int64(k)
		if errors.Is(err, syscall.ENOSPC) {
			return wrote
		}
		if err != nil {
			d.tb.Fatalf("fill %s: %v", d.filler, err)
		}
	}
}

// Unfill removes the filler: the space it took is free again.
func (d *Disk) Unfill() {
	d.tb.Helper()
	if err := os.Remove(d.filler); err != nil {
		d.tb.Fatalf("remove filler: %v", err)
	}
}
