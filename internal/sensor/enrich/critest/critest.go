// Package critest runs a real containerd (Debian's containerd 1.6, with its
// CRI plugin and containerd-shim-runc-v2) for tests: its own root, state,
// socket and config under a temporary directory, images built here (a
// busybox-static image and a pause image) pushed to an in-process
// go-containerregistry registry and pulled through the CRI ImageService, and
// pods and containers created through the CRI RuntimeService exactly as the
// kubelet does (RunPodSandbox, CreateContainer, StartContainer, ExecSync).
// Pods use the host network, so no CNI plugin is needed.
//
// It needs root, containerd, runc and busybox-static (apt-get install
// containerd runc busybox-static); Start skips the test with the reason when
// something is missing, and fails it instead when BULWARK_REQUIRE_SENSOR=1
// (CI). It must not be imported by non-test code.
package critest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ErrUnavailable means a containerd cannot be started here.
var ErrUnavailable = errors.New("critest: cannot run containerd")

// Available reports why containerd cannot run here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root", ErrUnavailable)
	}
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("%w: %s not installed (apt-get install containerd runc)", ErrUnavailable, b)
		}
	}
	if _, err := busybox(); err != nil {
		return err
	}
	return nil
}

func busybox() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		b, err := os.ReadFile(p)
		if err == nil && bytes.HasPrefix(b, []byte("\x7fELF")) && !bytes.Contains(b, []byte("/lib64/ld-linux")) && !bytes.Contains(b, []byte("/lib/ld-linux")) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: no static busybox (apt-get install busybox-static)", ErrUnavailable)
}

// Containerd is a running containerd with the CRI plugin.
type Containerd struct {
	Dir      string // everything lives under it
	Socket   string // containerd's (and the CRI's) gRPC socket
	RuncRoot string // runc --root of the k8s.io namespace (runc state.json per container)
	// Registry is host:port of the in-process registry the images are pulled from.
	Registry string
	// Busybox is the workload image (busybox-static, /etc/shadow, /bin/sh …)
	// and BusyboxDigest its manifest digest (sha256:…), as pushed.
	Busybox, BusyboxDigest string
	Pause                  string // the sandbox image

	Runtime runtimeapi.RuntimeServiceClient
	Images  runtimeapi.ImageServiceClient

	conn *grpc.ClientConn
	cmd  *exec.Cmd
	done chan struct{}
	t    testing.TB
	pods []*Pod
}

// Start starts containerd, pushes the images to a registry of the test's
// and pulls the workload image through CRI. Everything is stopped and
// removed when the test ends.
func Start(t testing.TB) *Containerd {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("BULWARK_REQUIRE_SENSOR") == "1" {
			t.Fatalf("containerd is required here (BULWARK_REQUIRE_SENSOR=1): %v", err)
		}
		t.Skip(err.Error())
	}
	// Short paths: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "bulwark-critest-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Dir: dir, Socket: filepath.Join(dir, "c.sock"), RuncRoot: filepath.Join(dir, "runc", "k8s.io"), t: t}
	t.Cleanup(func() { c.cleanup(); _ = os.RemoveAll(dir) })

	reg := httptest.NewServer(registry.New(registry.Logger(nopLogger())))
	t.Cleanup(reg.Close)
	c.Registry = strings.TrimPrefix(reg.URL, "http://")
	c.Pause = c.Registry + "/bulwark-test/pause:3.6"
	c.Busybox = c.Registry + "/bulwark-test/busybox:1"
	bb, err := busybox()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := push(c.Pause, bb, []string{"/bin/sleep", "2147483647"}); err != nil {
		t.Fatalf("push pause image: %v", err)
	}
	if c.BusyboxDigest, err = push(c.Busybox, bb, []string{"/bin/sh"}); err != nil {
		t.Fatalf("push busybox image: %v", err)
	}

	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(c.config()), 0o600); err != nil {
		t.Fatal(err)
	}
	c.conn, err = grpc.NewClient("unix://"+c.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c.Runtime = runtimeapi.NewRuntimeServiceClient(c.conn)
	c.Images = runtimeapi.NewImageServiceClient(c.conn)
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, img := range []string{c.Pause, c.Busybox} {
		if _, err := c.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: img}}); err != nil {
			t.Fatalf("CRI PullImage %s: %v\n%s", img, err, c.LogTail())
		}
	}
	return c
}

func (c *Containerd) config() string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  disable_apparmor = true
  # This machine (and some sandboxed CI runners) refuses lowering
  # oom_score_adj below the parent's (the pause container asks -998).
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors.%q]
    endpoint = [%q]
`, filepath.Join(c.Dir, "root"), filepath.Join(c.Dir, "state"), c.Socket, c.Socket+".ttrpc", filepath.Join(c.Dir, "opt"),
		c.Pause, filepath.Join(c.Dir, "runc"), filepath.Join(c.Dir, "cni", "bin"), filepath.Join(c.Dir, "cni", "conf"),
		c.Registry, "http://"+c.Registry)
}

// start runs containerd and waits until the CRI answers.
func (c *Containerd) start() error {
	logf, err := os.OpenFile(filepath.Join(c.Dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command("containerd", "--config", filepath.Join(c.Dir, "config.toml"), "--log-level", "info")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: the shims it starts outlive a containerd
	// restart (as in production) and are ended by removing the pods.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start containerd: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	c.cmd, c.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("containerd exited at start: %v\n%s", err, c.LogTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd CRI not ready after 30s: %v\n%s", err, c.LogTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops containerd (SIGTERM, then SIGKILL after 10 s); the pods and
// their shims keep running, as when a node's runtime restarts.
func (c *Containerd) Stop() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
}

// Restart starts containerd again with the same root and state (it
// reconnects to the running shims).
func (c *Containerd) Restart(t testing.TB) {
	t.Helper()
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
}

// LogTail is the end of containerd's log, for failure messages.
func (c *Containerd) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "containerd.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Pod is a running pod sandbox.
type Pod struct {
	ID                   string // the sandbox id (the pause container's id)
	Name, Namespace, UID string
	CgroupParent         string // e.g. /kubepods/besteffort/pod<uid>
	Config               *runtimeapi.PodSandboxConfig
}

// RunPod runs a pod sandbox the way the kubelet does: kubelet's labels
// (io.kubernetes.pod.{name,namespace,uid}) plus the pod's own, host network,
// cgroup parent /kubepods/besteffort/pod<uid> (cgroupfs driver).
func (c *Containerd) RunPod(t testing.TB, name, namespace string, podLabels map[string]string) *Pod {
	t.Helper()
	uid := newUID()
	labels := map[string]string{"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.uid": uid}
	for k, v := range podLabels {
		labels[k] = v
	}
	p := &Pod{Name: name, Namespace: namespace, UID: uid, CgroupParent: "/kubepods/besteffort/pod" + uid}
	logDir := filepath.Join(c.Dir, "pods", namespace+"_"+name+"_"+uid)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p.Config = &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: namespace, Uid: uid},
		LogDirectory: logDir,
		Labels:       labels,
		Annotations:  map[string]string{"kubernetes.io/config.source": "api"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: p.CgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
				Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := c.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: p.Config})
	if err != nil {
		t.Fatalf("CRI RunPodSandbox: %v\n%s", err, c.LogTail())
	}
	p.ID = r.PodSandboxId
	c.pods = append(c.pods, p)
	return p
}

// ContainerOptions shape a container.
type ContainerOptions struct {
	Name string
	// KubeletLabels: label the container as the kubelet does
	// (io.kubernetes.{pod.name,pod.namespace,pod.uid,container.name});
	// false creates it as crictl would, with no labels.
	KubeletLabels bool
	Command       []string // default /bin/sleep 3600
}

// StartContainer creates and starts a busybox container in the pod; it
// returns the container id.
func (c *Containerd) StartContainer(t testing.TB, p *Pod, o ContainerOptions) string {
	t.Helper()
	if o.Command == nil {
		o.Command = []string{"/bin/sleep", "3600"}
	}
	var labels map[string]string
	if o.KubeletLabels {
		labels = map[string]string{"io.kubernetes.pod.name": p.Name, "io.kubernetes.pod.namespace": p.Namespace,
			"io.kubernetes.pod.uid": p.UID, "io.kubernetes.container.name": o.Name}
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: o.Name},
		Image:       &runtimeapi.ImageSpec{Image: c.Busybox},
		Command:     o.Command,
		Labels:      labels,
		Annotations: map[string]string{"io.kubernetes.container.restartCount": "0"},
		LogPath:     o.Name + "/0.log",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := c.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.ID, Config: cfg, SandboxConfig: p.Config})
	if err != nil {
		t.Fatalf("CRI CreateContainer: %v\n%s", err, c.LogTail())
	}
	if _, err := c.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: r.ContainerId}); err != nil {
		t.Fatalf("CRI StartContainer: %v\n%s", err, c.LogTail())
	}
	return r.ContainerId
}

// Exec runs a command in a container (CRI ExecSync) and returns its output.
func (c *Containerd) Exec(ctx context.Context, id string, cmd ...string) (*runtimeapi.ExecSyncResponse, error) {
	r, err := c.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 30})
	if err != nil {
		return nil, fmt.Errorf("CRI ExecSync %v in %s: %w", cmd, id, err)
	}
	return r, nil
}

// RemoveContainer stops (SIGKILL at once) and removes a container.
func (c *Containerd) RemoveContainer(t testing.TB, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
		t.Fatalf("CRI StopContainer: %v", err)
	}
	if _, err := c.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("CRI RemoveContainer: %v", err)
	}
}

// InitPID is the pid (on the host) of a container's first process, from
// the runc state containerd's shim keeps.
func (c *Containerd) InitPID(id string) (int, error) {
	b, err := os.ReadFile(filepath.Join(c.RuncRoot, id, "state.json"))
	if err != nil {
		return 0, err
	}
	const key = `"init_process_pid":`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, fmt.Errorf("no init pid in %s state", id)
	}
	var pid int
	_, err = fmt.Sscanf(string(b[i+len(key):]), "%d", &pid)
	return pid, err
}

func (c *Containerd) cleanup() {
	if c.cmd == nil && len(c.pods) > 0 && c.conn != nil {
		// Stopped by the test and not restarted (it failed): start it again
		// to remove the pods properly.
		if err := c.start(); err != nil {
			c.t.Logf("critest cleanup: %v", err)
		}
	}
	if c.cmd != nil && len(c.pods) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		for _, p := range c.pods {
			if _, err := c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.ID}); err != nil {
				c.t.Logf("critest cleanup: stop pod %s: %v", p.ID, err)
			}
			if _, err := c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.ID}); err != nil {
				c.t.Logf("critest cleanup: remove pod %s: %v", p.ID, err)
			}
		}
		cancel()
	}
	c.Stop()
	if c.conn != nil {
		c.conn.Close()
	}
	// Last resort: shims of containers that could not be removed (their
	// pid files are only left when removal failed).
	pids, _ := filepath.Glob(filepath.Join(c.Dir, "state", "io.containerd.runtime.v2.task", "*", "*", "shim.pid"))
	for _, f := range pids {
		var pid int
		if b, err := os.ReadFile(f); err == nil {
			if _, err := fmt.Sscanf(string(b), "%d", &pid); err == nil && pid > 1 {
				c.t.Logf("critest cleanup: killing leftover shim %d (%s)", pid, f)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	// Mounts containerd left under its directories (snapshots, shm).
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var mnts []string
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 && strings.HasPrefix(f[4], c.Dir+"/") {
				mnts = append(mnts, f[4])
			}
		}
		for i := len(mnts) - 1; i >= 0; i-- {
			_ = unix.Unmount(mnts[i], unix.MNT_DETACH)
		}
	}
	// This harness's pods' cgroup parents, in every mounted hierarchy (runc
	// removes each container's own cgroup, not its parent). Only ours: other
	// tests may be running pods under /kubepods at the same time, so the
	// shared /kubepods/besteffort directories stay (empty directories).
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, p := range c.pods {
		for _, r := range roots {
			_ = os.Remove(filepath.Join(r, p.CgroupParent))
		}
	}
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// push builds a one-layer image around a static busybox and pushes it;
// it returns the manifest digest.
func push(ref, busyboxPath string, entrypoint []string) (string, error) {
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mod := time.Unix(1_700_000_000, 0)
	dirs := []string{"bin/", "etc/", "tmp/", "proc/", "sys/", "dev/", "root/"}
	for _, d := range dirs {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, ModTime: mod}); err != nil {
			return "", err
		}
	}
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"bin/busybox", 0o755, bb},
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		{"etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")},
		{"etc/shadow", 0o640, []byte("root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n")},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: mod}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", err
		}
	}
	for _, applet := range []string{"sh", "cat", "sleep", "ls", "id", "touch", "cp", "echo", "mount"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: mod}); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil })
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goruntime.GOARCH
	cf.Config = v1.Config{Entrypoint: entrypoint, Env: []string{"PATH=/bin"}, WorkingDir: "/"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return "", err
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img); err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}
