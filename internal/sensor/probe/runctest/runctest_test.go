package runctest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestStartExec(t *testing.T) {
	c := Start(t, Options{Files: map[string]string{"/etc/motd": "hello from the image\n"}})
	ctx := context.Background()
	r, err := c.Sh(ctx, "cat /etc/motd; echo upper > /tmp/x; hostname")
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "hello from the image") || !strings.Contains(r.Stdout, "runctest") {
		t.Fatalf("unexpected result %+v", r)
	}
	// The write landed in the writable layer, not the image.
	if b, err := os.ReadFile(filepath.Join(c.Upper, "tmp/x")); err != nil || string(b) != "upper\n" {
		t.Fatalf("upper layer: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(c.Lower, "tmp/x")); !os.IsNotExist(err) {
		t.Fatalf("image layer changed: %v", err)
	}
	r, err = c.Sh(ctx, "exit 3")
	if err != nil || r.ExitCode != 3 {
		t.Fatalf("exit code: %+v %v", r, err)
	}
	pid, err := c.InitPID()
	if err != nil || pid <= 1 {
		t.Fatalf("init pid %d %v", pid, err)
	}
	cg, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil || !strings.Contains(string(cg), c.CgroupPath) {
		t.Fatalf("init cgroup %q does not contain %s (%v)", cg, c.CgroupPath, err)
	}
}
