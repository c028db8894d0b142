package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/bulwark-security/bulwark/internal/rules"
)

var errSkipped = errors.New("skipped by configuration")

// ErrUnsupported means the kernel cannot run the sensor (no BTF, no BPF, not
// root); tests skip on it.
var ErrUnsupported = errors.New("kernel cannot run the sensor")

// Op is what a path filter reports: reads, writes, removals.
type Op uint32

// Path filter operations (OP_* in the C code).
const (
	OpRead   Op = 0x1 // open for reading
	OpWrite  Op = 0x2 // open for writing, creating or truncating
	OpRemove Op = 0x4 // unlink, rename (source), truncate
)

// PathFilter selects, in the kernel, the file events worth a sample: every
// other open, unlink or rename is dropped before it reaches user space.
// Path is a prefix ("/etc/shadow", "/var/log/") or, with Suffix, an ending
// that should begin with "/" to match a whole base name ("/authorized_keys").
// Only the first 127 bytes of a path are compared.
type PathFilter struct {
	Path   string
	Suffix bool
	Ops    Op
}

// DefaultPathFilters are the sensitive paths the default rules look at.
func DefaultPathFilters() []PathFilter {
	rw := OpRead | OpWrite
	return []PathFilter{
		{Path: "/etc/shadow", Ops: rw}, {Path: "/etc/gshadow", Ops: rw},
		{Path: "/etc/passwd", Ops: OpWrite}, {Path: "/etc/group", Ops: OpWrite},
		{Path: "/etc/sudoers", Ops: rw}, {Path: "/etc/ld.so.preload", Ops: OpWrite},
		{Path: "/etc/pam.d/", Ops: OpWrite}, {Path: "/etc/cron", Ops: OpWrite},
		{Path: "/var/spool/cron/", Ops: OpWrite},
		{Path: "/var/lib/kubelet/kubeconfig", Ops: rw}, {Path: "/var/lib/kubelet/pki", Ops: rw},
		{Path: "/etc/kubernetes/", Ops: rw},
		{Path: "/root/.ssh/", Ops: OpWrite},
		{Path: "/var/log/", Ops: OpRemove},
		{Path: "/authorized_keys", Suffix: true, Ops: OpWrite},
		{Path: "/authorized_keys2", Suffix: true, Ops: OpWrite},
		{Path: "/.bash_history", Suffix: true, Ops: OpRemove}, {Path: "/.zsh_history", Suffix: true, Ops: OpRemove},
		{Path: "/.ash_history", Suffix: true, Ops: OpRemove}, {Path: "/.sh_history", Suffix: true, Ops: OpRemove},
		{Path: "/.history", Suffix: true, Ops: OpRemove}, {Path: "/fish_history", Suffix: true, Ops: OpRemove},
		{Path: "/.python_history", Suffix: true, Ops: OpRemove}, {Path: "/.mysql_history", Suffix: true, Ops: OpRemove},
		{Path: "/.psql_history", Suffix: true, Ops: OpRemove},
	}
}

// Config configures Load. The zero value is usable.
type Config struct {
	Logger *slog.Logger
	// RingBufferBytes is the ring buffer size (a power of two, multiple of
	// the page size); 0 means 8 MiB.
	RingBufferBytes uint32
	// Paths are the kernel-side file filters; nil means DefaultPathFilters.
	Paths []PathFilter
	// SkipHost drops host processes' events in the kernel (host = the
	// cgroup2 root). Drift prevention still applies.
	SkipHost bool
	// PreventAll kills drift (upper-layer or memfd executables) in every
	// container; SetPrevention selects single cgroups.
	PreventAll bool
	// PreventUnknown kills upper-layer drift in every cgroup that has no
	// prevention decision yet (none on it or on an ancestor) other than the
	// host's root: a new container is protected from its first exec, before
	// user space has attributed it; user space then settles it with
	// SetPrevention or AllowDrift. Memfd executions are left to the
	// decisions (host software uses memfd).
	PreventUnknown bool
	// IncludeSelf reports the sensor process's own calls (tests and
	// benchmarks); by default they are dropped to avoid feedback loops.
	IncludeSelf bool
	// Containers attributes cgroup ids; nil means a CgroupResolver on the
	// host's cgroup2 mount.
	Containers ContainerIDs
	// ProcFS is read once per process that exec'd before the sensor
	// started; "" means "/proc", "-" disables.
	ProcFS string
	// BatchBytes: the kernel wakes the reader only once this much data is
	// pending; smaller amounts are picked up every PollInterval. Waking the
	// reader for each sample costs a context switch per event. 0 means
	// 256 KiB (at most a quarter of the ring buffer); set NoBatching to wake
	// on every sample (lowest latency).
	BatchBytes uint32
	NoBatching bool
	// PollInterval bounds how long a sample may wait when batching; 0 means
	// 100ms. Each poll is a wake-up of the reader (a context switch, costly
	// on a VM), so it is the reader's idle cost; drift prevention does not
	// wait for it (the kernel kills at exec).
	PollInterval time.Duration
	// Skip names attach points not to attach (e.g. "sys_enter_openat"):
	// every classic syscall tracepoint puts all syscalls of all tasks on
	// the kernel's slower traced path, so an operator may trade events
	// for overhead. The exec program cannot be skipped.
	Skip []string
}

// Probe is the loaded and attached sensor. Read from one goroutine; the other
// methods are safe to call concurrently.
type Probe struct {
	log      *slog.Logger
	objs     sensorObjects
	links    []link.Link
	missing  map[string]error
	attached []string
	progs    map[string]*ebpf.Program // attach point → program, for ProgramStats
	rd       *ringbuf.Reader
	dec      *Decoder
	ids      ContainerIDs
	poll     time.Duration

	cfgMu     sync.Mutex // read-modify-write of the config map
	mu        sync.Mutex
	read      uint64
	badDecode uint64
	closed    bool
}

type attachPoint struct {
	name     string // tracepoint or tp_btf name
	btf      bool
	required bool
	prog     func(*sensorPrograms) *ebpf.Program
}

// attachPoints is the explicit list of programs and where they attach.
var attachPoints = []attachPoint{
	{"sched_process_exec", true, true, func(p *sensorPrograms) *ebpf.Program { return p.OnExec }},
	{"sched_process_exit", true, false, func(p *sensorPrograms) *ebpf.Program { return p.OnExit }},
	{"inet_sock_set_state", true, false, func(p *sensorPrograms) *ebpf.Program { return p.OnSockState }},
	{"sys_enter_connect", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnConnect }},
	{"sys_enter_openat", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnOpenat }},
	{"sys_enter_open", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnOpen }},
	{"sys_enter_openat2", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnOpenat2 }},
	{"sys_enter_unlink", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnUnlink }},
	{"sys_enter_unlinkat", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnUnlinkat }},
	{"sys_enter_rename", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnRename }},
	{"sys_enter_renameat", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnRenameat }},
	{"sys_enter_renameat2", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnRenameat2 }},
	{"sys_enter_truncate", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnTruncate }},
	{"sys_enter_chmod", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnChmod }},
	{"sys_enter_fchmod", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnFchmod }},
	{"sys_enter_fchmodat", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnFchmodat }},
	{"sys_enter_fchmodat2", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnFchmodat2 }},
	{"sys_enter_memfd_create", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnMemfdCreate }},
	{"sys_enter_setuid", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnSetuid }},
	{"sys_enter_setgid", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnSetgid }},
	{"sys_enter_setresuid", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnSetresuid }},
	{"sys_enter_setresgid", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnSetresgid }},
	{"sys_enter_ptrace", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnPtrace }},
	{"sys_enter_unshare", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnUnshare }},
	{"sys_enter_setns", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnSetns }},
	{"sys_enter_clone", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnClone }},
	{"sys_enter_clone3", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnClone3 }},
	{"sys_enter_init_module", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnInitModule }},
	{"sys_enter_finit_module", false, false, func(p *sensorPrograms) *ebpf.Program { return p.OnFinitModule }},
}

// SyscallAttachPoints lists the classic syscalls:sys_enter_* attach points.
// Enabling any of them puts every syscall of every task on the kernel's
// traced slow path (the bulk of the sensor's overhead on syscall-heavy
// work); Config.Skip with this list keeps only exec, exit and listen.
func SyscallAttachPoints() []string {
	var out []string
	for _, ap := range attachPoints {
		if !ap.btf {
			out = append(out, ap.name)
		}
	}
	return out
}

// Supported reports why this machine cannot run the sensor, or nil.
func Supported() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root", ErrUnsupported)
	}
	if _, err := btf.LoadKernelSpec(); err != nil {
		return fmt.Errorf("%w: no kernel BTF: %v", ErrUnsupported, err)
	}
	return nil
}

// ensureTracefs mounts tracefs when classic tracepoints cannot be found
// (tp_btf programs do not need it).
func ensureTracefs() error {
	for _, p := range []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	if err := unix.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
		return fmt.Errorf("mount tracefs: %w", err)
	}
	return nil
}

// Load loads the BPF programs, fills their maps from cfg and attaches them.
// Only the exec program is required; others that cannot attach on this
// kernel are logged and listed by Missing.
func Load(ctx context.Context, cfg Config) (*Probe, error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	spec, err := loadSensor()
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	if cfg.RingBufferBytes != 0 {
		spec.Maps["events"].MaxEntries = cfg.RingBufferBytes
	}
	p := &Probe{log: log, missing: map[string]error{}, progs: map[string]*ebpf.Program{}}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			log.Error("verifier", "log", strings.Join(ve.Log, "\n"))
		}
		return nil, fmt.Errorf("load programs: %w", err)
	}
	fail := func(err error) (*Probe, error) {
		p.Close()
		return nil, err
	}

	ids := cfg.Containers
	var hostCg uint64 = 1
	if ids == nil {
		r, err := NewCgroupResolver("")
		if err != nil {
			return fail(fmt.Errorf("load: %w", err))
		}
		ids, hostCg = r, r.rootID
	} else if r, ok := ids.(*CgroupResolver); ok {
		hostCg = r.rootID
	}
	c := sensorConfig{HostCgroup: hostCg}
	if cfg.PreventAll {
		c.PreventAll = 1
	}
	if cfg.SkipHost {
		c.SkipHost = 1
	}
	if cfg.PreventUnknown {
		c.PreventUnknown = 1
	}
	if !cfg.IncludeSelf {
		c.SelfTgid = uint32(os.Getpid())
	}
	c.WakeupBytes = cfg.BatchBytes
	if c.WakeupBytes == 0 {
		c.WakeupBytes = 256 << 10
		if rb := spec.Maps["events"].MaxEntries; c.WakeupBytes > rb/4 {
			c.WakeupBytes = rb / 4
		}
	}
	if cfg.NoBatching {
		c.WakeupBytes = 0
	}
	p.poll = cfg.PollInterval
	if p.poll <= 0 {
		p.poll = 100 * time.Millisecond
	}
	paths := cfg.Paths
	if paths == nil {
		paths = DefaultPathFilters()
	}
	for _, f := range paths {
		if f.Suffix {
			c.SuffixMax = max(c.SuffixMax, uint32(min(len(f.Path), lpmData-1)))
		}
	}
	if err := p.objs.ConfigMap.Put(uint32(0), &c); err != nil {
		return fail(fmt.Errorf("load config: %w", err))
	}
	if err := p.setPaths(paths); err != nil {
		return fail(err)
	}

	if err := ensureTracefs(); err != nil {
		log.Warn("classic tracepoints unavailable", "err", err)
	}
	if err := p.attach(ctx, cfg.Skip); err != nil {
		return fail(err)
	}

	if p.rd, err = ringbuf.NewReader(p.objs.Events); err != nil {
		return fail(fmt.Errorf("ring buffer: %w", err))
	}
	procFS := cfg.ProcFS
	switch procFS {
	case "":
		procFS = "/proc"
	case "-":
		procFS = ""
	}
	p.ids = ids
	p.dec = NewDecoder(ids, bootOffset(), procFS)
	return p, nil
}

// attach attaches every program of attachPoints not in skip. Only the exec
// program is required; the others that fail are listed by Missing.
func (p *Probe) attach(ctx context.Context, skip []string) error {
	for _, ap := range attachPoints {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !ap.required && slices.Contains(skip, ap.name) {
			p.missing[ap.name] = errSkipped
			continue
		}
		prog := ap.prog(&p.objs.sensorPrograms)
		var l link.Link
		var err error
		if ap.btf {
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		} else {
			l, err = link.Tracepoint("syscalls", ap.name, prog, nil)
		}
		if err != nil {
			if ap.required {
				return fmt.Errorf("attach %s: %w", ap.name, err)
			}
			p.log.Info("program not attached", "point", ap.name, "err", err)
			p.missing[ap.name] = err
			continue
		}
		p.links = append(p.links, l)
		p.attached = append(p.attached, ap.name)
		p.progs[ap.name] = prog
	}
	return nil
}

// detach removes every attachment, leaving programs, maps and the reader in
// place (the overhead benchmark toggles the sensor without reloading it).
func (p *Probe) detach() error {
	var errs []error
	for i := len(p.links) - 1; i >= 0; i-- {
		errs = append(errs, p.links[i].Close())
	}
	p.links, p.attached = nil, nil
	clear(p.missing)
	return errors.Join(errs...)
}

// Containers is the attribution in use (a *CgroupResolver unless
// Config.Containers replaced it).
func (p *Probe) Containers() ContainerIDs { return p.ids }

// bootOffset is what to add to CLOCK_BOOTTIME (bpf_ktime_get_boot_ns) to get
// Unix nanoseconds.
func bootOffset() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Now().UnixNano() - ts.Nano()
}

// lpmData is the LPM key's data size (LPM_DATA in the C code).
const lpmData = len(sensorLpmKey{}.Data)

func lpmKey(path string, reverse bool) sensorLpmKey {
	var k sensorLpmKey
	b := []byte(path)
	if len(b) > len(k.Data)-1 {
		b = b[:len(k.Data)-1]
	}
	for i := range b {
		if reverse {
			k.Data[i] = b[len(b)-1-i]
		} else {
			k.Data[i] = b[i]
		}
	}
	k.Prefixlen = uint32(len(b) * 8)
	return k
}

func (p *Probe) setPaths(paths []PathFilter) error {
	for _, f := range paths {
		if f.Path == "" || f.Ops == 0 {
			return fmt.Errorf("path filter %q: empty path or no operations", f.Path)
		}
		m := p.objs.PathPrefix
		if f.Suffix {
			m = p.objs.PathSuffix
		}
		k := lpmKey(f.Path, f.Suffix)
		// Two filters on one path add up their operations.
		var old uint32
		if err := m.Lookup(&k, &old); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("path filter %q: %w", f.Path, err)
		}
		if err := m.Put(&k, old|uint32(f.Ops)); err != nil {
			return fmt.Errorf("path filter %q: %w", f.Path, err)
		}
	}
	return nil
}

// Values of the prevent_cgroups map (PREVENT_* in the C code).
const (
	preventOn    uint8 = 1
	preventAllow uint8 = 2
)

// SetPrevention turns drift prevention on or off for one cgroup (a
// container's cgroup id, see CgroupID): while on, an exec of a binary from
// the container's writable layer or from a memfd is killed before it runs.
// The decision covers the cgroup's descendants too, unless one of them has
// its own: set on a pod's cgroup (or any parent a runtime creates before the
// container), it holds from the container's very first exec, before user
// space has seen the container. Off removes the decision (the cgroup then
// follows its ancestors and the global modes).
func (p *Probe) SetPrevention(cgroupID uint64, on bool) error {
	if on {
		if err := p.objs.PreventCgroups.Put(cgroupID, preventOn); err != nil {
			return fmt.Errorf("set prevention on %d: %w", cgroupID, err)
		}
		return nil
	}
	if err := p.objs.PreventCgroups.Delete(cgroupID); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("set prevention off %d: %w", cgroupID, err)
	}
	return nil
}

// AllowDrift exempts one cgroup (and its descendants without a decision of
// their own) from prevention, overriding PreventAll, PreventUnknown and an
// ancestor's SetPrevention; on=false removes the exemption.
func (p *Probe) AllowDrift(cgroupID uint64, on bool) error {
	if !on {
		return p.SetPrevention(cgroupID, false)
	}
	if err := p.objs.PreventCgroups.Put(cgroupID, preventAllow); err != nil {
		return fmt.Errorf("allow drift in %d: %w", cgroupID, err)
	}
	return nil
}

// SetPreventAll turns drift prevention on or off for every container.
func (p *Probe) SetPreventAll(on bool) error {
	return p.setConfig(func(c *sensorConfig) { c.PreventAll = b2u(on) })
}

// SetPreventUnknown turns Config.PreventUnknown on or off.
func (p *Probe) SetPreventUnknown(on bool) error {
	return p.setConfig(func(c *sensorConfig) { c.PreventUnknown = b2u(on) })
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func (p *Probe) setConfig(change func(*sensorConfig)) error {
	p.cfgMu.Lock()
	defer p.cfgMu.Unlock()
	var c sensorConfig
	if err := p.objs.ConfigMap.Lookup(uint32(0), &c); err != nil {
		return fmt.Errorf("prevention config: %w", err)
	}
	change(&c)
	if err := p.objs.ConfigMap.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("prevention config: %w", err)
	}
	return nil
}

// Attached lists the attach points in use; Missing those that failed (a
// kernel without that tracepoint) with why.
func (p *Probe) Attached() []string { return append([]string(nil), p.attached...) }

// Missing returns the optional attach points that failed, with their errors.
func (p *Probe) Missing() map[string]error {
	m := make(map[string]error, len(p.missing))
	for k, v := range p.missing {
		m[k] = v
	}
	return m
}

// ProgramStat is the kernel's accounting of one attached program: how often
// it ran and for how long in total. The kernel counts only while BPF
// statistics are enabled (EnableRunStats, or sysctl
// kernel.bpf_stats_enabled=1); otherwise both are zero.
type ProgramStat struct {
	Runs    uint64
	Runtime time.Duration
}

// ProgramStats returns the run count and run time of every attached program,
// by attach point: where the sensor's in-kernel time goes.
func (p *Probe) ProgramStats() (map[string]ProgramStat, error) {
	out := make(map[string]ProgramStat, len(p.progs))
	for name, prog := range p.progs {
		st, err := prog.Stats()
		if err != nil {
			return nil, fmt.Errorf("program stats %s: %w", name, err)
		}
		out[name] = ProgramStat{Runs: st.RunCount, Runtime: st.Runtime}
	}
	return out, nil
}

// EnableRunStats turns on the kernel's per-program run-time accounting
// until the returned Closer is closed. Accounting costs two clock reads per
// program run, so it is for measuring, not for production.
func EnableRunStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("enable bpf stats: %w", err)
	}
	return c, nil
}

// Stats are the probe's counters. Lost events are those the kernel could not
// put in a full ring buffer.
type Stats struct {
	Read         uint64            // samples read
	DecodeErrors uint64            // samples that did not decode
	Lost         uint64            // total lost in the kernel
	LostByType   map[string]uint64 // by event type
	LostByCPU    []uint64          // by CPU
}

// Stats reads the counters (kernel ones from the lost-events map).
func (p *Probe) Stats() (Stats, error) {
	p.mu.Lock()
	s := Stats{Read: p.read, DecodeErrors: p.badDecode, LostByType: map[string]uint64{}}
	p.mu.Unlock()
	for k := uint32(1); k < kindMax; k++ {
		var perCPU []uint64
		if err := p.objs.Lost.Lookup(k, &perCPU); err != nil {
			return s, fmt.Errorf("stats: %w", err)
		}
		if len(s.LostByCPU) < len(perCPU) {
			s.LostByCPU = append(s.LostByCPU, make([]uint64, len(perCPU)-len(s.LostByCPU))...)
		}
		for cpu, n := range perCPU {
			s.LostByCPU[cpu] += n
			s.Lost += n
			if n > 0 {
				s.LostByType[kindType[k].String()] += n
			}
		}
	}
	return s, nil
}

// Read decodes samples into one reused Event and calls fn for each, until
// ctx is done (it then returns ctx.Err()) or the probe is closed (nil). The
// Event is valid only during fn; copy what must outlive it (its strings may
// be kept: they are never aliased to the ring buffer). Decode errors are
// counted, not returned.
func (p *Probe) Read(ctx context.Context, fn func(*rules.Event)) error {
	var rec ringbuf.Record
	var ev rules.Event
	var n, bad uint64
	flush := func() {
		p.mu.Lock()
		p.read += n
		p.badDecode += bad
		p.mu.Unlock()
		n, bad = 0, 0
	}
	defer flush()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.rd.SetDeadline(time.Now().Add(p.poll))
		if err := p.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				flush()
				continue
			}
			if errors.Is(err, ringbuf.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read ring buffer: %w", err)
		}
		n++
		if err := p.dec.Decode(rec.RawSample, &ev); err != nil {
			bad++
			continue
		}
		fn(&ev)
		if n >= 4096 {
			flush()
		}
	}
}

// Close detaches and unloads everything. Read returns nil after Close.
func (p *Probe) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	var errs []error
	if p.rd != nil {
		errs = append(errs, p.rd.Close())
	}
	for i := len(p.links) - 1; i >= 0; i-- {
		errs = append(errs, p.links[i].Close())
	}
	errs = append(errs, p.objs.Close())
	return errors.Join(errs...)
}
