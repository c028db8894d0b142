package sensor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor/enrich"
)

// RuleScriptDrift is the built-in detection of a script that was not in the
// image run by an interpreter.
const RuleScriptDrift = "Drift - script not in image"

// ScriptDrift detects an interpreter (sh, bash, dash, ash, python*, perl,
// ruby, node, php, busybox sh, ...) running a script that lives in the
// container's writable (upper) overlay layer — written or modified after the
// container started. Two shapes reach it:
//
//   - "./x.sh" with a shebang: the kernel runs the interpreter; the exec
//     event's filename (ExePath) is the script, argv[0] (Exe) the
//     interpreter from the "#!" line, and the kernel's upper-layer bit
//     describes the interpreter, not the script;
//   - "sh /tmp/x.sh": the exec'd file is the interpreter, the script is its
//     first operand (options such as -c, -e, -m that take inline code or a
//     module mean there is no script file).
//
// The check is done in user space, off the event path (a bounded queue and
// a worker; a full queue is a counted drop): the script path is resolved
// against the event's cwd inside the container's root (/proc/<pid>/root,
// symlinks resolved inside the container), the mount holding it is found in
// /proc/<pid>/mountinfo, and when that is the container's overlay root the
// file is looked up in the overlay's upperdir (a host path, read through
// HostRoot) and must agree with what the container sees (size, mtime,
// mode). When the exec'd process has already exited, another process of the
// same container is used (the runtime state's init pid). This is detection,
// not prevention: the script has run (or is running) when the alert is
// raised; the kernel-side prevention covers binaries only.
type ScriptDrift struct {
	// ProcRoot is procfs (default /proc).
	ProcRoot string
	// HostRoot prefixes the overlay's upperdir/lowerdir paths, which are
	// host paths as the runtime mounted them (default /proc/1/root when it
	// is readable — the host's root for a sensor with hostPID — else "/").
	HostRoot string
	// Runtime, when set, names a live process of a container whose exec'd
	// process has exited (its init pid).
	Runtime interface {
		State(ctx context.Context, id string) (*enrich.ContainerState, error)
	}
	QueueSize int // candidate execs waiting (default 1024)
	Log       *slog.Logger

	// Counters.
	Checked, Found, Dropped, Unverifiable atomic.Uint64
	// ViaInit counts checks made through the container's init process
	// because the exec'd process had already exited.
	ViaInit atomic.Uint64

	hostOnce sync.Once
	host     string
}

// hostRoot is HostRoot, or /proc/1/root when it can be read (a sensor in a
// hostPID container), else "/" (a sensor on the host).
func (d *ScriptDrift) hostRoot() string {
	d.hostOnce.Do(func() {
		d.host = d.HostRoot
		if d.host != "" {
			return
		}
		d.host = "/"
		if _, err := os.Stat("/proc/1/root/"); err == nil {
			d.host = "/proc/1/root"
		}
	})
	return d.host
}

// ScriptFinding is a positive check.
type ScriptFinding struct {
	Script      string // the script as the container sees it (symlinks resolved)
	Interpreter string
	InImage     bool // a file of that path exists in an image (lower) layer: the image's script was modified
}

// Errors of a script check.
var (
	ErrNoLiveProcess = errors.New("no live process of the container to inspect")
	ErrNotOverlay    = errors.New("container root is not an overlay mount")
)

// interpreterBase returns the interpreter family of an executable's base
// name ("python3.11" → "python"), or "".
func interpreterBase(name string) string {
	for _, p := range []string{"bash", "dash", "ash", "sh", "zsh", "ksh", "mksh", "python", "perl", "ruby", "node", "nodejs", "php", "busybox"} {
		if name == p {
			return p
		}
		if strings.HasPrefix(name, p) {
			rest := name[len(p):]
			if strings.Trim(rest, "0123456789.") == "" && (p == "python" || p == "perl" || p == "ruby" || p == "php" || p == "node") {
				return p
			}
		}
	}
	return ""
}

func selfExe(p string) bool {
	return strings.HasPrefix(p, "/proc/") && strings.HasSuffix(p, "/exe")
}

func isShell(fam string) bool {
	switch fam {
	case "sh", "bash", "dash", "ash", "zsh", "ksh", "mksh":
		return true
	}
	return false
}

// Candidate decides, without I/O, whether an exec event may be an
// interpreter running a script file, and which path to check. It is called
// on the pipeline goroutine for every exec.
func (d *ScriptDrift) Candidate(ev *rules.Event) (script, interpreter string, shebang bool, ok bool) {
	if !isExec(ev) || ev.Container.ID == "" || ev.Container.ID == "host" || ev.Proc.ExeUpperLayer || ev.Proc.ExeFromMemfd {
		return "", "", false, false // not a container exec, or the binary-drift rule already covers it
	}
	exeBase := path.Base(ev.Proc.ExePath)
	argv0 := path.Base(ev.Proc.Exe)
	if selfExe(ev.Proc.ExePath) {
		// A multi-call binary re-executing itself (busybox sh running
		// "sh x.sh" as /proc/self/exe): argv[0] names the interpreter.
		exeBase = argv0
	} else if fam := interpreterBase(argv0); fam != "" && exeBase != argv0 && interpreterBase(exeBase) == "" && ev.Proc.ExePath != "" {
		// Shebang: the kernel ran argv[0]'s interpreter for the file ExePath.
		return ev.Proc.ExePath, argv0, true, true
	}
	fam := interpreterBase(exeBase)
	if fam == "" {
		fam = interpreterBase(ev.Proc.Name)
	}
	if fam == "" {
		return "", "", false, false
	}
	s := operandOf(fam, argv0, strings.Fields(ev.Proc.Args))
	if s == "" {
		return "", "", false, false
	}
	return s, exeBase, false, true
}

// operandOf is the script operand of an interpreter family's arguments.
func operandOf(fam, argv0 string, args []string) string {
	if fam == "busybox" {
		switch {
		case isShell(interpreterBase(argv0)): // busybox run under an applet name: argv[0] "sh"
			fam = "sh"
		case len(args) > 0 && isShell(interpreterBase(args[0])): // "busybox sh x.sh"
			fam, args = "sh", args[1:]
		default:
			return ""
		}
	}
	return scriptOperand(fam, args)
}

// scriptOperand returns the script file an interpreter's arguments name, or
// "" when it runs inline code, a module, stdin or nothing.
func scriptOperand(fam string, args []string) string {
	// Options that take the next argument as their value (not a script).
	valued := map[string]bool{}
	inline := map[string]bool{}
	switch {
	case isShell(fam):
		valued = map[string]bool{"-o": true, "+o": true, "-O": true, "+O": true, "--rcfile": true, "--init-file": true}
		inline = map[string]bool{"-c": true, "-s": true}
	case fam == "python":
		valued = map[string]bool{"-W": true, "-X": true, "--check-hash-based-pycs": true}
		inline = map[string]bool{"-c": true, "-m": true, "-": true}
	case fam == "perl":
		valued = map[string]bool{"-I": true, "-M": true, "-m": true}
		inline = map[string]bool{"-e": true, "-E": true}
	case fam == "ruby":
		valued = map[string]bool{"-I": true, "-r": true, "-C": true}
		inline = map[string]bool{"-e": true}
	case fam == "node", fam == "nodejs":
		valued = map[string]bool{"-r": true, "--require": true, "--import": true, "--loader": true}
		inline = map[string]bool{"-e": true, "--eval": true, "-p": true, "--print": true, "-i": true, "--interactive": true}
	case fam == "php":
		valued = map[string]bool{"-c": true, "-d": true, "-z": true}
		inline = map[string]bool{"-r": true, "-R": true, "-B": true, "-E": true, "-a": true}
		for i, a := range args {
			if a == "-f" && i+1 < len(args) {
				return args[i+1]
			}
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		}
		if inline[a] {
			return ""
		}
		if valued[a] {
			i++
			continue
		}
		if strings.HasPrefix(a, "-") || (isShell(fam) && strings.HasPrefix(a, "+")) {
			// Clustered shell flags: "-ec" carries -c (inline).
			if isShell(fam) && !strings.HasPrefix(a, "--") && strings.ContainsAny(a[1:], "c") {
				return ""
			}
			if (fam == "python" && strings.HasPrefix(a, "-c")) || (fam == "perl" || fam == "ruby") && (strings.HasPrefix(a, "-e") || strings.HasPrefix(a, "-E")) {
				return "" // -c'code', -e'code'
			}
			continue
		}
		return a
	}
	return ""
}

// Check inspects one candidate. A nil finding with a nil error means the
// script is not in the writable layer (image file, volume, not found).
func (d *ScriptDrift) Check(ctx context.Context, ev *rules.Event, script string, shebang bool) (*ScriptFinding, error) {
	d.Checked.Add(1)
	proc := d.ProcRoot
	if proc == "" {
		proc = "/proc"
	}
	// The exec'd process first, then the container's init: a process may
	// exit between any two reads of its /proc entry.
	var lastErr error
	tried := 0
	for _, pick := range []func() int{
		func() int {
			if ev.Proc.PID > 0 && inContainer(proc, int(ev.Proc.PID), ev.Container.ID) {
				return int(ev.Proc.PID)
			}
			return 0
		},
		func() int { return d.initPID(ctx, proc, ev) },
	} {
		pid := pick()
		if pid == 0 || (tried > 0 && int64(pid) == ev.Proc.PID) {
			continue
		}
		tried++
		if int64(pid) != ev.Proc.PID {
			d.ViaInit.Add(1)
		}
		f, err := d.checkVia(proc, pid, ev, script, shebang)
		if errors.Is(err, errProcGone) {
			lastErr = err
			continue
		}
		if err != nil {
			d.Unverifiable.Add(1)
		}
		return f, err
	}
	d.Unverifiable.Add(1)
	if lastErr == nil {
		lastErr = fmt.Errorf("pid %d exited", ev.Proc.PID)
	}
	return nil, fmt.Errorf("container %s: %w: %v", ev.Container.ID, ErrNoLiveProcess, lastErr)
}

// errProcGone: the inspected process exited while it was read.
var errProcGone = errors.New("process exited during the check")

func gone(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%w: %v", errProcGone, err)
	}
	return err
}

// checkVia inspects the script through one live process of the container.
func (d *ScriptDrift) checkVia(proc string, pid int, ev *rules.Event, script string, shebang bool) (*ScriptFinding, error) {
	pdir := filepath.Join(proc, strconv.Itoa(pid))
	if !shebang && int64(pid) == ev.Proc.PID {
		script = exactOperand(pdir, ev, script)
	}
	cwd := ev.Proc.CWD
	if !path.IsAbs(script) && (cwd == "" || strings.HasPrefix(cwd, "/...")) {
		// The kernel's cwd was truncated: the live process's own cwd, if it
		// is the exec'd process.
		if int64(pid) != ev.Proc.PID {
			return nil, fmt.Errorf("script %q: cwd unknown", script)
		}
		l, err := os.Readlink(filepath.Join(pdir, "cwd"))
		if err != nil {
			return nil, fmt.Errorf("script %q: cwd: %w", script, err) // not retried: init's cwd is not the script's
		}
		cwd = l
	}
	full := script
	if !path.IsAbs(full) {
		full = path.Join(cwd, full)
	}
	root, err := os.OpenRoot(filepath.Join(pdir, "root"))
	if err != nil {
		return nil, gone(fmt.Errorf("container root of pid %d: %w", pid, err))
	}
	defer root.Close()
	canon, err := resolveIn(root, full)
	if err != nil {
		return nil, nil // not a file the container can see (any more)
	}
	mounts, err := readMountinfo(filepath.Join(pdir, "mountinfo"))
	if err != nil {
		return nil, gone(err)
	}
	m := mountFor(mounts, canon)
	if m == nil || m.point != "/" {
		return nil, nil // on a volume or another mount: not the image's overlay
	}
	if m.fstype != "overlay" {
		return nil, fmt.Errorf("script %s: %w (%s)", canon, ErrNotOverlay, m.fstype)
	}
	upper, lowers := overlayDirs(m.super)
	if upper == "" {
		return nil, nil // a read-only overlay: nothing was written
	}
	cst, err := root.Stat(strings.TrimPrefix(canon, "/"))
	if err != nil || !cst.Mode().IsRegular() {
		return nil, nil
	}
	host := d.hostRoot()
	ust, err := os.Lstat(filepath.Join(host, upper, canon))
	if err != nil || !ust.Mode().IsRegular() {
		return nil, nil // not in the upper layer: the image's own file
	}
	// The upper file must be the one the container sees (a mount shadowing
	// the path, or a racing rewrite, would differ).
	if ust.Size() != cst.Size() || !ust.ModTime().Equal(cst.ModTime()) || ust.Mode() != cst.Mode() {
		return nil, nil
	}
	if shebang {
		f, err := root.OpenFile(strings.TrimPrefix(canon, "/"), os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, nil
		}
		var hdr [2]byte
		_, err = io.ReadFull(f, hdr[:])
		f.Close()
		if err != nil || string(hdr[:]) != "#!" {
			return nil, nil
		}
	}
	fd := &ScriptFinding{Script: canon}
	for _, l := range lowers {
		if _, err := os.Lstat(filepath.Join(host, l, canon)); err == nil {
			fd.InImage = true
			break
		}
	}
	d.Found.Add(1)
	return fd, nil
}

// exactOperand re-reads the operand from /proc/<pid>/cmdline (NUL-separated:
// a script path with spaces survives) when the process still runs the
// command the event saw; otherwise it keeps the operand from the event.
func exactOperand(pdir string, ev *rules.Event, script string) string {
	b, err := readSmall(filepath.Join(pdir, "cmdline"), 64<<10)
	if err != nil || len(b) == 0 {
		return script
	}
	argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(argv) < 2 || strings.Join(argv[1:], " ") != ev.Proc.Args {
		return script
	}
	fam := interpreterBase(path.Base(ev.Proc.ExePath))
	if selfExe(ev.Proc.ExePath) || fam == "" {
		fam = interpreterBase(path.Base(argv[0]))
	}
	if fam == "" {
		return script
	}
	if s := operandOf(fam, path.Base(argv[0]), argv[1:]); s != "" {
		return s
	}
	return script
}

// initPID is the container's init process from the runtime state, when it
// is alive and still in the container (not a reused pid); 0 otherwise.
func (d *ScriptDrift) initPID(ctx context.Context, proc string, ev *rules.Event) int {
	if d.Runtime == nil {
		return 0
	}
	st, err := d.Runtime.State(ctx, ev.Container.ID)
	if err != nil || st.InitPID <= 0 || !inContainer(proc, st.InitPID, ev.Container.ID) {
		return 0
	}
	return st.InitPID
}

// inContainer: /proc/<pid>/cgroup names the container id (the pid was not
// reused by another container's or the host's process).
func inContainer(proc string, pid int, id string) bool {
	if len(id) < 12 {
		return false
	}
	b, err := readSmall(filepath.Join(proc, strconv.Itoa(pid), "cgroup"), 64<<10)
	return err == nil && bytes.Contains(b, []byte(id))
}

func readSmall(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// resolveIn resolves p (absolute, in the container's view) inside root,
// following symlinks as the container would (absolute targets restart at
// the container's root), and returns the canonical path.
func resolveIn(root *os.Root, p string) (string, error) {
	parts := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	var done []string
	links := 0
	for len(parts) > 0 {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := strings.Join(append(done, c), "/")
		fi, err := root.Lstat(cur)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("%s: too many symlinks", p)
		}
		t, err := root.Readlink(cur)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(t, "/") {
			done = nil
		}
		parts = append(strings.Split(strings.Trim(t, "/"), "/"), parts...)
	}
	return "/" + strings.Join(done, "/"), nil
}

type mountEntry struct {
	point, fstype, super string
}

// readMountinfo parses /proc/<pid>/mountinfo (bounded).
func readMountinfo(p string) ([]mountEntry, error) {
	b, err := readSmall(p, 4<<20)
	if err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return parseMountinfo(b), nil
}

// parseMountinfo reads "id parent maj:min root mountpoint opts [optional...] - fstype source superopts" lines.
func parseMountinfo(b []byte) []mountEntry {
	var out []mountEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" && i >= 6 {
				sep = i
				break
			}
		}
		if sep < 0 || len(f) < sep+4 {
			continue
		}
		out = append(out, mountEntry{point: unescapeMount(f[4]), fstype: f[sep+1], super: f[sep+3]})
	}
	return out
}

// mountFor returns the mount holding p: the longest mount point prefix,
// the last listed when several stack on one point.
func mountFor(ms []mountEntry, p string) *mountEntry {
	var best *mountEntry
	for i := range ms {
		m := &ms[i]
		if m.point == p || m.point == "/" || strings.HasPrefix(p, m.point+"/") {
			if best == nil || len(m.point) >= len(best.point) {
				best = m
			}
		}
	}
	return best
}

// overlayDirs takes upperdir and the lower dirs out of overlayfs's super
// options (octal escapes as the kernel writes them; lowerdir entries
// separated by unescaped ':', or given one per "lowerdir+=").
func overlayDirs(super string) (upper string, lowers []string) {
	for _, o := range splitUnescaped(super, ',') {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "upperdir":
			upper = unescapeMount(v)
		case "lowerdir", "lowerdir+":
			for _, l := range splitUnescaped(v, ':') {
				if l != "" {
					lowers = append(lowers, unescapeMount(strings.ReplaceAll(l, `\:`, ":")))
				}
			}
		}
	}
	return upper, lowers
}

func splitUnescaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == sep {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unescapeMount undoes the kernel's octal escapes (\040 space, \011, \012, \134, \054 ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && isOct(s, i+1) {
			n, _ := strconv.ParseUint(s[i+1:i+4], 8, 8)
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOct(s string, i int) bool {
	if i+3 > len(s) {
		return false
	}
	for _, c := range s[i : i+3] {
		if c < '0' || c > '7' {
			return false
		}
	}
	return s[i] <= '3'
}

type scriptJob struct {
	ev          rules.Event
	info        *enrich.Info
	script      string
	interpreter string
	shebang     bool
}

// title and detection of a finding.
func scriptDetection(ev *rules.Event, f *ScriptFinding, interpreter string) Detection {
	origin := "written in the container"
	if f.InImage {
		origin = "image file modified in the container"
	}
	return Detection{
		Rule:     RuleScriptDrift,
		Severity: alerts.SeverityHigh,
		Title: fmt.Sprintf("Script not in image run by an interpreter (script=%s %s interpreter=%s cmdline=%s container=%s image=%s)",
			f.Script, origin, interpreter, ev.Proc.Cmdline, ev.Container.ID, ev.Container.Image),
		Tactic: "TA0002", Technique: "T1059",
		Key: f.Script,
	}
}
