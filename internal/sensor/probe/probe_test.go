package probe

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor/probe/runctest"
)

func load(t *testing.T, cfg Config) *Probe {
	t.Helper()
	needKernel(t, false)
	p, err := Load(context.Background(), cfg)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func inContainer(id string) func(*rules.Event) bool {
	return func(e *rules.Event) bool { return e.Container.ID == id }
}

func TestContainerAttribution(t *testing.T) {
	needKernel(t, true)
	p := load(t, Config{})
	c := runctest.Start(t, runctest.Options{})
	col := collect(t, p, nil, func(e *rules.Event) bool {
		return e.Container.ID == c.ID || (e.Type == rules.EventExecve && strings.Contains(e.Proc.Args, "bulwark-host-marker"))
	})
	ctx := context.Background()
	if _, err := c.Sh(ctx, "cd /tmp && /bin/cat /etc/hostname /nonexistent; true"); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("/bin/sh", "-c", "true bulwark-host-marker").Run(); err != nil {
		t.Fatal(err)
	}
	s := col.wait(t, "exec of cat in the container", 5*time.Second, func(s *seen) bool {
		return s.ev.Type == rules.EventExecve && s.ev.Proc.Name == "cat"
	})
	if s != nil {
		e := s.ev
		if e.Container.ID != c.ID || e.Proc.ExePath != "/bin/cat" || e.Proc.Args != "/etc/hostname /nonexistent" ||
			e.Proc.Cmdline != "cat /etc/hostname /nonexistent" || e.Proc.CWD != "/tmp" || e.User.UID != 0 ||
			e.Proc.ExeUpperLayer || e.Proc.ExeFromMemfd || len(e.Proc.Ancestors) == 0 || e.Proc.Ancestors[0].Name != "sh" {
			t.Errorf("exec event: %+v", e)
		}
		if e.Time < time.Now().Add(-time.Minute).UnixNano() || e.Time > time.Now().UnixNano() {
			t.Errorf("event time %v is not now", time.Unix(0, e.Time))
		}
	}
	if s := col.wait(t, "host exec", 5*time.Second, func(s *seen) bool { return s.ev.Proc.Name == "sh" && s.ev.Container.ID == HostID }); s == nil {
		t.Error("host exec not marked host")
	}
}

func TestDriftDetectedAndPrevented(t *testing.T) {
	needKernel(t, true)
	p := load(t, Config{})
	c := runctest.Start(t, runctest.Options{})
	root, err := CgroupRoot()
	if err != nil {
		t.Fatal(err)
	}
	cgid, err := CgroupID(c.CgroupDir(root))
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, p, nil, inContainer(c.ID))
	ctx := context.Background()

	// A binary copied into the writable layer, then run: drift.
	r, err := c.Sh(ctx, "cp /bin/busybox /tmp/touch && /tmp/touch /tmp/marker1 && /bin/true")
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("drift run: %+v %v", r, err)
	}
	if s := col.wait(t, "drift exec", 5*time.Second, func(s *seen) bool { return s.ev.Proc.ExePath == "/tmp/touch" }); s != nil {
		if !s.ev.Proc.ExeUpperLayer || Prevented(&s.ev) {
			t.Errorf("drift exec: upper=%v prevented=%v", s.ev.Proc.ExeUpperLayer, Prevented(&s.ev))
		}
	}
	if s := col.wait(t, "image exec", 5*time.Second, func(s *seen) bool { return s.ev.Proc.ExePath == "/bin/true" }); s != nil && s.ev.Proc.ExeUpperLayer {
		t.Error("a binary from the image was reported as drift")
	}
	if _, err := os.Stat(filepath.Join(c.Upper, "tmp/marker1")); err != nil {
		t.Fatalf("drift binary did not run without prevention: %v", err)
	}

	// Prevention on: the same kind of binary is killed before it runs.
	if err := p.SetPrevention(cgid, true); err != nil {
		t.Fatal(err)
	}
	col.reset()
	r, err = c.Sh(ctx, "mkdir -p /tmp/b && cp /bin/busybox /tmp/b/touch; /tmp/b/touch /tmp/marker2; echo rc=$?")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Stdout, "rc=137") {
		t.Errorf("drift exec not killed by SIGKILL: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(c.Upper, "tmp/marker2")); !os.IsNotExist(err) {
		t.Errorf("prevented binary ran: marker2 exists (%v)", err)
	}
	if s := col.wait(t, "prevented exec", 5*time.Second, func(s *seen) bool { return s.ev.Proc.ExePath == "/tmp/b/touch" }); s != nil {
		if !Prevented(&s.ev) || !s.ev.Proc.ExeUpperLayer {
			t.Errorf("prevented exec event: prevented=%v upper=%v", Prevented(&s.ev), s.ev.Proc.ExeUpperLayer)
		}
	}
	// The next normal exec (an image binary) is unaffected.
	r, err = c.Sh(ctx, "touch /tmp/marker3")
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("image exec under prevention: %+v %v", r, err)
	}
	if _, err := os.Stat(filepath.Join(c.Upper, "tmp/marker3")); err != nil {
		t.Errorf("image binary did not run under prevention: %v", err)
	}
	// Prevention off again: drift runs.
	if err := p.SetPrevention(cgid, false); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Sh(ctx, "/tmp/b/touch /tmp/marker4"); err != nil || r.ExitCode != 0 {
		t.Fatalf("drift after prevention off: %+v %v", r, err)
	}
	if _, err := os.Stat(filepath.Join(c.Upper, "tmp/marker4")); err != nil {
		t.Errorf("drift binary did not run after prevention was turned off: %v", err)
	}
}

func TestMemfdExec(t *testing.T) {
	p := load(t, Config{IncludeSelf: true})
	col := collect(t, p, nil, func(e *rules.Event) bool { return e.Type == rules.EventExecve && e.Proc.ExeFromMemfd })
	fd, err := unix.MemfdCreate("bulwark-fileless", 0)
	if err != nil {
		t.Skipf("memfd_create: %v", err)
	}
	f := os.NewFile(uintptr(fd), "memfd")
	defer f.Close()
	bin, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip("no /bin/true")
	}
	if _, err := f.Write(bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/proc/self/fd/3")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Run(); err != nil {
		t.Fatalf("exec memfd: %v", err)
	}
	if s := col.wait(t, "memfd exec", 5*time.Second, func(*seen) bool { return true }); s != nil && s.ev.Proc.ExeUpperLayer {
		t.Error("memfd exec reported as upper layer")
	}
}

func TestPtraceAndSetuid(t *testing.T) {
	p := load(t, Config{})
	sleep := exec.Command("/bin/sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	col := collect(t, p, nil, func(e *rules.Event) bool { return e.Type == rules.EventPtrace || e.Type == rules.EventSetuid })
	// A child does the calls: the sensor's own process is filtered out.
	cmd := exec.Command("/proc/self/exe", "-test.run=TestHelperProcess")
	cmd.Env = append(os.Environ(), "BULWARK_PROBE_HELPER=ptrace", "BULWARK_PROBE_TARGET="+itoa(sleep.Process.Pid))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v %s", err, out)
	}
	if s := col.wait(t, "ptrace", 5*time.Second, func(s *seen) bool { return s.ev.Type == rules.EventPtrace && s.ev.Args.PID == int64(sleep.Process.Pid) }); s != nil && s.ev.Args.Flags != unix.PTRACE_ATTACH {
		t.Errorf("ptrace request %d", s.ev.Args.Flags)
	}
	if s := col.wait(t, "setuid", 5*time.Second, func(s *seen) bool {
		return s.ev.Type == rules.EventSetuid && s.ev.Proc.PPID == int64(os.Getpid())
	}); s != nil && s.ev.Args.UID != 0 {
		t.Errorf("setuid uid %d", s.ev.Args.UID)
	}
}

// TestHelperProcess is the child of TestPtraceAndSetuid, not a test.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv("BULWARK_PROBE_HELPER") {
	case "ptrace":
		pid := atoi(os.Getenv("BULWARK_PROBE_TARGET"))
		if err := syscall.PtraceAttach(pid); err == nil {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
			syscall.PtraceDetach(pid)
		}
		syscall.Setuid(0)
	}
}

func TestSkipSyscallPoints(t *testing.T) {
	p := load(t, Config{Skip: SyscallAttachPoints()})
	for _, a := range p.Attached() {
		if strings.HasPrefix(a, "sys_enter_") {
			t.Errorf("%s attached although skipped", a)
		}
	}
	if len(p.Attached()) == 0 || p.Attached()[0] != "sched_process_exec" {
		t.Errorf("attached: %v", p.Attached())
	}
	if _, ok := p.Missing()["sys_enter_openat"]; !ok {
		t.Error("skipped point not listed as missing")
	}
}
