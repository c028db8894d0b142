// Package runctest starts real containers for tests: Debian's runc running a
// busybox-static root filesystem on an overlay mount (a read-only "image"
// layer plus a writable upper layer, as a container runtime lays it out), in
// a cgroup path of the test's choosing. Sensor tests use it to act inside a
// container and check what the kernel reported.
//
// It needs root, runc and busybox-static (apt-get install runc
// busybox-static); Available says what is missing so tests can skip. It must
// not be imported by non-test code.
package runctest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ErrUnavailable means containers cannot be started here.
var ErrUnavailable = errors.New("runctest: cannot start containers")

// Available reports why containers cannot be started here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root", ErrUnavailable)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return fmt.Errorf("%w: runc not installed (apt-get install runc)", ErrUnavailable)
	}
	if _, err := busybox(); err != nil {
		return err
	}
	return nil
}

func busybox() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if out, err := exec.Command("file", "-L", p).Output(); err == nil && bytes.Contains(out, []byte("statically linked")) {
			return p, nil
		} else if err != nil {
			if _, serr := os.Stat(p); serr == nil && isStaticELF(p) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%w: no static busybox (apt-get install busybox-static)", ErrUnavailable)
}

// isStaticELF is the fallback when file(1) is missing: a static binary has no
// PT_INTERP, so its bytes never name the dynamic loader.
func isStaticELF(p string) bool {
	b, err := os.ReadFile(p)
	return err == nil && bytes.HasPrefix(b, []byte("\x7fELF")) && !bytes.Contains(b, []byte("/lib64/ld-linux"))
}

// Options shape the container.
type Options struct {
	// CgroupParent is the cgroup directory the container's cgroup goes
	// under; the container's own cgroup is CgroupParent/<ID>.
	// Default "/bulwark-runctest".
	CgroupParent string
	// Files are extra files of the image (lower) layer: path in the
	// container → content. A content starting with "#!" is made executable.
	Files map[string]string
	// Caps are the capabilities of the container's processes; nil means
	// runc's defaults (CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE).
	Caps []string
	// RuncRoot is runc's --root (its state directory); default a
	// directory of the test's. A containerd-like layout is
	// <dir>/containerd/runc/k8s.io, as containerd's shim runs runc.
	RuncRoot string
	// Args is the container's init process; nil means /bin/sleep 3600
	// (Exec needs a running container: a short-lived init ends it).
	Args []string
	// UpperCopies are host files copied into the writable (upper) layer
	// before the container starts, executable: container path → host path.
	// They are not in the image, so executing one is drift from the very
	// first exec.
	UpperCopies map[string]string
	// Annotations go into the bundle's config.json (as a CRI runtime
	// writes them, e.g. io.kubernetes.cri.image-name).
	Annotations map[string]string
}

// Container is a running container (its init process is `sleep`); Exec
// runs commands in it.
type Container struct {
	ID         string // 64 hex digits, as runtimes name containers
	Bundle     string
	Lower      string // the image layer (read-only in the container)
	Upper      string // the writable layer
	Rootfs     string // the overlay mount
	CgroupPath string // relative to the cgroup root, e.g. /bulwark-runctest/<ID>
	runcRoot   string
}

// RuncRoot is the runc state directory the container is registered in.
func (c *Container) RuncRoot() string { return c.runcRoot }

// Start builds the bundle and starts a container; it is stopped and removed
// when the test ends. It skips the test when Available fails.
func Start(t testing.TB, opts Options) *Container {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err.Error())
	}
	c, err := start(opts, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.remove)
	return c
}

func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func start(opts Options, dir string) (*Container, error) {
	bb, err := busybox()
	if err != nil {
		return nil, err
	}
	parent := opts.CgroupParent
	if parent == "" {
		parent = "/bulwark-runctest"
	}
	c := &Container{
		ID:       newID(),
		Bundle:   filepath.Join(dir, "bundle"),
		Lower:    filepath.Join(dir, "lower"),
		Upper:    filepath.Join(dir, "upper"),
		runcRoot: filepath.Join(dir, "runc"),
	}
	if opts.RuncRoot != "" {
		c.runcRoot = opts.RuncRoot
	}
	c.Rootfs = filepath.Join(c.Bundle, "rootfs")
	c.CgroupPath = filepath.Join(parent, c.ID)
	work := filepath.Join(dir, "work")
	for _, d := range []string{c.Lower, c.Upper, work, c.Rootfs, c.runcRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("runctest: %w", err)
		}
	}
	if err := buildImage(c.Lower, bb, opts.Files); err != nil {
		return nil, err
	}
	for dst, src := range opts.UpperCopies {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("runctest: %w", err)
		}
		p := filepath.Join(c.Upper, filepath.Clean("/"+dst))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, fmt.Errorf("runctest: %w", err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			return nil, fmt.Errorf("runctest: %w", err)
		}
	}
	mopts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", c.Lower, c.Upper, work)
	if err := unix.Mount("overlay", c.Rootfs, "overlay", 0, mopts); err != nil {
		return nil, fmt.Errorf("runctest: mount overlay: %w", err)
	}
	if err := writeConfig(c, opts); err != nil {
		c.remove()
		return nil, err
	}
	// The detached container inherits runc's stdio: a pipe would never see
	// EOF, so runc's output goes to a file.
	logPath := filepath.Join(dir, "runc.log")
	logf, err := os.Create(logPath)
	if err != nil {
		c.remove()
		return nil, fmt.Errorf("runctest: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("runc", "--root", c.runcRoot, "run", "-d", "--bundle", c.Bundle, c.ID)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logPath)
		c.remove()
		return nil, fmt.Errorf("runctest: runc run: %v: %s", err, out)
	}
	return c, nil
}

// buildImage lays out a busybox root filesystem: every applet a symlink to
// /bin/busybox, plus the files a sensor test reads or tampers with.
func buildImage(root, bb string, extra map[string]string) error {
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var/log", "var/lib/kubelet", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("runctest image: %w", err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		return fmt.Errorf("runctest image: %w", err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return fmt.Errorf("runctest image: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		return fmt.Errorf("runctest image: %w", err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("runctest image: busybox --list: %w", err)
	}
	for _, name := range strings.Fields(string(out)) {
		if name == "busybox" || strings.ContainsAny(name, "/[") {
			continue
		}
		if err := os.Symlink("/bin/busybox", filepath.Join(root, "bin", name)); err != nil && !os.IsExist(err) {
			return fmt.Errorf("runctest image: %w", err)
		}
	}
	files := map[string]string{
		"/etc/passwd":                 "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"/etc/group":                  "root:x:0:\nnogroup:x:65534:\n",
		"/etc/shadow":                 "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
		"/var/log/app.log":            "started\n",
		"/var/lib/kubelet/kubeconfig": "apiVersion: v1\nkind: Config\n",
	}
	for k, v := range extra {
		files[k] = v
	}
	for p, content := range files {
		full := filepath.Join(root, filepath.Clean("/"+p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("runctest image: %w", err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(content, "#!") {
			mode = 0o755
		}
		if p == "/etc/shadow" {
			mode = 0o640
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			return fmt.Errorf("runctest image: %w", err)
		}
	}
	return nil
}

func writeConfig(c *Container, opts Options) error {
	caps := opts.Caps
	if caps == nil {
		caps = []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	}
	capSet := map[string]any{"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps}
	args := opts.Args
	if args == nil {
		args = []string{"/bin/sleep", "3600"}
	}
	spec := map[string]any{
		"ociVersion": "1.0.2-dev",
		"process": map[string]any{
			"terminal":        false,
			"user":            map[string]any{"uid": 0, "gid": 0},
			"args":            args,
			"env":             []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/root"},
			"cwd":             "/",
			"capabilities":    capSet,
			"rlimits":         []any{map[string]any{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}},
			"noNewPrivileges": true,
		},
		"root":     map[string]any{"path": c.Rootfs, "readonly": false},
		"hostname": "runctest",
		"mounts": []any{
			map[string]any{"destination": "/proc", "type": "proc", "source": "proc"},
			map[string]any{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			map[string]any{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		"linux": map[string]any{
			"cgroupsPath": c.CgroupPath,
			"namespaces": []any{
				map[string]any{"type": "pid"}, map[string]any{"type": "network"}, map[string]any{"type": "ipc"},
				map[string]any{"type": "uts"}, map[string]any{"type": "mount"},
			},
			"maskedPaths":   []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"},
			"readonlyPaths": []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	if len(opts.Annotations) > 0 {
		spec["annotations"] = opts.Annotations
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return fmt.Errorf("runctest config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.Bundle, "config.json"), b, 0o644); err != nil {
		return fmt.Errorf("runctest config: %w", err)
	}
	return nil
}

// Result is what a command in the container did.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
}

// Exec runs args in the container (runc exec) and waits for it. A non-zero
// exit is a Result, not an error; err is for runc failing to run it.
func (c *Container) Exec(ctx context.Context, args ...string) (Result, error) {
	cmd := exec.CommandContext(ctx, "runc", append([]string{"--root", c.runcRoot, "exec", c.ID}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := Result{Stdout: o.String(), Stderr: e.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.ExitCode = ee.ExitCode()
		if r.ExitCode < 0 || strings.Contains(r.Stderr, "runc exec failed") {
			return r, fmt.Errorf("runctest exec %v: %v: %s", args, err, r.Stderr)
		}
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("runctest exec %v: %w", args, err)
	}
	return r, nil
}

// Sh runs a shell command line in the container.
func (c *Container) Sh(ctx context.Context, script string) (Result, error) {
	return c.Exec(ctx, "/bin/sh", "-c", script)
}

// CgroupDir is the container's cgroup v2 directory under root (the cgroup2
// mount, e.g. /sys/fs/cgroup/unified); its inode is the cgroup id the
// kernel reports.
func (c *Container) CgroupDir(root string) string { return filepath.Join(root, c.CgroupPath) }

// InitPID returns the host pid of the container's init process.
func (c *Container) InitPID() (int, error) {
	out, err := exec.Command("runc", "--root", c.runcRoot, "state", c.ID).Output()
	if err != nil {
		return 0, fmt.Errorf("runctest state: %w", err)
	}
	var st struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return 0, fmt.Errorf("runctest state: %w", err)
	}
	return st.Pid, nil
}

func (c *Container) remove() {
	_ = exec.Command("runc", "--root", c.runcRoot, "delete", "-f", c.ID).Run()
	for i := 0; i < 50; i++ {
		if err := unix.Unmount(c.Rootfs, 0); err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Busybox returns the host's static busybox (what the image is built from),
// for tests that put a copy into the writable layer.
func Busybox() (string, error) { return busybox() }
