package critest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestContainerd: the harness itself — containerd starts, a pod and a
// container run, a command runs in it.
func TestContainerd(t *testing.T) {
	c := Start(t)
	p := c.RunPod(t, "web-1", "shop", map[string]string{"app": "web"})
	id := c.StartContainer(t, p, ContainerOptions{Name: "app", KubeletLabels: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.Exec(ctx, id, "/bin/cat", "/etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode != 0 || !strings.HasPrefix(string(r.Stdout), "root:") {
		t.Fatalf("exec: %d %q %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	if pid, err := c.InitPID(id); err != nil || pid <= 1 {
		t.Fatalf("init pid %d: %v", pid, err)
	}
}
