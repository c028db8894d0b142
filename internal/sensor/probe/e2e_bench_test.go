package probe

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor/probe/runctest"
)

// BenchmarkEndToEnd measures events/s from the kernel to the default rule
// set: a goroutine opens /etc/shadow (a kernel-filtered sensitive path, so
// each open is one sample) b.N times while Read decodes and evaluates every
// sample. It reports the kernel's lost count: the figure holds only when
// lost is 0.
func BenchmarkEndToEnd(b *testing.B) {
	needKernel(b, false)
	eng := defaultEngine(b)
	p, err := Load(context.Background(), Config{IncludeSelf: true, RingBufferBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	before, _ := p.Stats()
	self := int64(os.Getpid())
	var got, matched atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var dst []rules.Match
		p.Read(ctx, func(ev *rules.Event) {
			if ev.Proc.PID != self || ev.FD.Name != "/etc/shadow" {
				return
			}
			dst = eng.Evaluate(ev, dst[:0])
			matched.Add(int64(len(dst)))
			if got.Add(1) == int64(b.N) {
				cancel()
			}
		})
	}()
	b.ResetTimer()
	start := time.Now()
	gen := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer close(gen)
		for i := 0; i < b.N; i++ {
			fd, err := unix.Open("/etc/shadow", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err == nil {
				unix.Close(fd)
			}
		}
	}()
	<-gen
	genDur := time.Since(start)
	select {
	case <-done:
	case <-time.After(10 * time.Second): // lost events never arrive
		cancel()
		<-done
	}
	elapsed := time.Since(start)
	b.StopTimer()
	after, _ := p.Stats()
	lost := after.Lost - before.Lost
	b.ReportMetric(float64(got.Load())/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/genDur.Seconds(), "generated/s")
	b.ReportMetric(float64(lost), "lost")
	if got.Load() > 0 && matched.Load() == 0 {
		b.Error("no rule matched /etc/shadow opens")
	}
}

// BenchmarkExecOverhead runs 20,000 execs (/bin/true from a shell loop) in a
// container without the sensor and 20,000 with it (default configuration,
// reading, default rules evaluated), interleaved in one run: 40 pairs of
// 500-exec chunks in ABBA order, the sensor loaded once and its programs
// attached for the "with" chunks only, as a long-running sensor would be.
// Run with -benchtime=1x; on a shared machine repeat it (-count).
//
// Figures (b.ReportMetric):
//   - overhead-% / cpu-overhead-%: total with vs without, on wall clock and on
//     CPU (the container cgroup's CPU, which includes the BPF programs since
//     they run in its tasks' context, plus the sensor process's CPU beyond
//     what the harness costs without it); *-median-% are the medians of the
//     40 adjacent pairs, robust to a neighbour's burst hitting one chunk.
//   - accounted-cpu-%: the sensor's cost measured directly rather than as a
//     difference of two noisy totals: the kernel's run time of every BPF
//     program (BPF statistics are on for the run) plus the sensor process's
//     extra CPU, over the workload's CPU without the sensor. It leaves out
//     indirect costs (caches, the traced-syscall entry path; see
//     BenchmarkSyscallSlowPath for the latter).
//   - bpf-ns/exec (every program, machine-wide: other processes' opens
//     included), bpf-execpath-ns/exec (exec, exit and clone programs: what
//     each iteration of the workload runs), sensor-ns/event, events/exec,
//     loadavg.
//
// Each program's share is logged. BULWARK_PROBE_SKIP (comma-separated attach
// points, or "syscalls" for every classic syscall tracepoint) measures the
// share of each program.
func BenchmarkExecOverhead(b *testing.B) {
	needKernel(b, true)
	eng := defaultEngine(b)
	c := runctest.Start(b, runctest.Options{})
	ctx := context.Background()
	const total, chunk = 20000, 500
	script := "i=0; while [ $i -lt " + strconv.Itoa(chunk) + " ]; do /bin/true; i=$((i+1)); done"
	root, err := CgroupRoot()
	if err != nil {
		b.Fatal(err)
	}
	stats, err := EnableRunStats()
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	cgCPU := func() time.Duration {
		b, err := os.ReadFile(filepath.Join(c.CgroupDir(root), "cpu.stat"))
		if err != nil {
			return 0
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return time.Duration(n) * time.Microsecond
			}
		}
		return 0
	}
	selfCPU := func() time.Duration {
		var ru unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var skip []string
	if v := os.Getenv("BULWARK_PROBE_SKIP"); v == "syscalls" {
		skip = SyscallAttachPoints()
	} else if v != "" {
		skip = strings.Split(v, ",")
	}
	p, err := Load(ctx, Config{Skip: skip})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if err := p.detach(); err != nil {
		b.Fatal(err)
	}
	var (
		execs, events atomic.Int64 // container execs seen; all events read
	)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var dst []rules.Match
		p.Read(rctx, func(ev *rules.Event) {
			events.Add(1)
			if ev.Type == rules.EventExecve && ev.Container.ID == c.ID {
				execs.Add(1)
			}
			dst = eng.Evaluate(ev, dst[:0])
		})
	}()
	runtime.GC() // loading allocated (the kernel's BTF): not a per-event cost

	type sample struct{ wall, cg, self time.Duration }
	run := func(sensor bool) sample {
		if sensor {
			if err := p.attach(ctx, skip); err != nil {
				b.Fatal(err)
			}
		}
		c0, s0, t0 := cgCPU(), selfCPU(), time.Now()
		r, err := c.Sh(ctx, script)
		if err != nil || r.ExitCode != 0 {
			b.Fatalf("exec loop: %+v %v", r, err)
		}
		wall, cg := time.Since(t0), cgCPU()-c0
		// Both halves wait alike; the reader drains what the last poll
		// interval left (100 ms by default) before the sensor is detached.
		time.Sleep(150 * time.Millisecond)
		self := selfCPU() - s0
		if sensor {
			if err := p.detach(); err != nil {
				b.Fatal(err)
			}
		}
		return sample{wall, cg, self}
	}
	run(false) // warm up
	var with, without []sample
	b.ResetTimer()
	for i := 0; i < total/chunk; i++ {
		if i%2 == 0 {
			without = append(without, run(false))
			with = append(with, run(true))
		} else {
			with = append(with, run(true))
			without = append(without, run(false))
		}
	}
	b.StopTimer()
	cancel()
	<-done
	if n := execs.Load(); n < total {
		b.Errorf("saw %d container execs, want at least %d", n, total)
	}
	if st, _ := p.Stats(); st.Lost > 0 {
		b.Errorf("lost %d events", st.Lost)
	}
	var sw, sc, ss, tw, tc, ts time.Duration // with: wall, cg, self; without: the same
	var wallPct, cpuPct []float64
	for i := range with {
		sw, sc, ss = sw+with[i].wall, sc+with[i].cg, ss+with[i].self
		tw, tc, ts = tw+without[i].wall, tc+without[i].cg, ts+without[i].self
		wallPct = append(wallPct, 100*(with[i].wall.Seconds()-without[i].wall.Seconds())/without[i].wall.Seconds())
		extra := with[i].cg + with[i].self - without[i].self
		cpuPct = append(cpuPct, 100*(extra.Seconds()-without[i].cg.Seconds())/without[i].cg.Seconds())
	}
	ps, err := p.ProgramStats()
	if err != nil {
		b.Fatal(err)
	}
	var bpfTotal time.Duration
	names := make([]string, 0, len(ps))
	for k, v := range ps {
		bpfTotal += v.Runtime
		names = append(names, k)
	}
	sort.Strings(names)
	sensorCPU := ss - ts
	var load [3]float64
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(la), &load[0], &load[1], &load[2])
	}
	b.ReportMetric(load[0], "loadavg")
	b.ReportMetric(100*(sw.Seconds()-tw.Seconds())/tw.Seconds(), "overhead-%")
	b.ReportMetric(median(wallPct), "overhead-median-%")
	b.ReportMetric(100*((sc+sensorCPU).Seconds()-tc.Seconds())/tc.Seconds(), "cpu-overhead-%")
	b.ReportMetric(median(cpuPct), "cpu-overhead-median-%")
	b.ReportMetric(100*(bpfTotal+sensorCPU).Seconds()/tc.Seconds(), "accounted-cpu-%")
	b.ReportMetric(100*bpfTotal.Seconds()/tc.Seconds(), "bpf-cpu-%")
	b.ReportMetric(100*sensorCPU.Seconds()/tc.Seconds(), "sensor-cpu-%")
	b.ReportMetric(float64(tc.Nanoseconds())/total/1e3, "us-cpu/exec")
	b.ReportMetric(float64(bpfTotal.Nanoseconds())/total, "bpf-ns/exec")
	// The programs every fork+exec+exit runs; the others' run time is mostly
	// the rest of the machine's opens (other processes, not the workload).
	execPath := ps["sched_process_exec"].Runtime + ps["sched_process_exit"].Runtime + ps["sys_enter_clone"].Runtime
	b.ReportMetric(float64(execPath.Nanoseconds())/total, "bpf-execpath-ns/exec")
	if ev := events.Load(); ev > 0 {
		b.ReportMetric(float64(sensorCPU.Nanoseconds())/float64(ev), "sensor-ns/event")
		b.ReportMetric(float64(ev)/total, "events/exec")
	}
	for _, k := range names {
		if v := ps[k]; v.Runs > 0 {
			b.Logf("program %-24s runs %8d  %6.0f ns/run  %7.0f ns/exec", k, v.Runs,
				float64(v.Runtime.Nanoseconds())/float64(v.Runs), float64(v.Runtime.Nanoseconds())/total)
		}
	}
	b.Logf("pairs wall %%: %.1f", wallPct)
	b.Logf("pairs cpu %%: %.1f", cpuPct)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkSyscallSlowPath measures what the classic syscall tracepoints cost
// every syscall of every process, traced or not: while any
// syscalls:sys_enter_* program is attached the kernel sets the syscall-
// tracepoint work flag on every task, and each syscall takes the slower
// entry path. It times getppid (which no program traces) with the sensor's
// programs detached and attached (default configuration), alternating, and
// compares the fastest chunk of each: noise from neighbours only ever adds
// time, so the minimum is the intrinsic cost.
func BenchmarkSyscallSlowPath(b *testing.B) {
	needKernel(b, false)
	ctx := context.Background()
	const chunk = 20000
	var skip []string
	if v := os.Getenv("BULWARK_PROBE_SKIP"); v == "syscalls" {
		skip = SyscallAttachPoints()
	} else if v != "" {
		skip = strings.Split(v, ",")
	}
	p, err := Load(ctx, Config{Skip: skip})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	loop := func() time.Duration {
		t0 := time.Now()
		for i := 0; i < chunk; i++ {
			unix.Getppid()
		}
		return time.Since(t0)
	}
	without, with := time.Duration(1<<62), time.Duration(1<<62)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.detach(); err != nil {
			b.Fatal(err)
		}
		without = min(without, loop())
		if err := p.attach(ctx, skip); err != nil {
			b.Fatal(err)
		}
		with = min(with, loop())
	}
	b.ReportMetric(float64(without.Nanoseconds())/chunk, "ns/syscall-without")
	b.ReportMetric(float64(with.Nanoseconds())/chunk, "ns/syscall-with")
	b.ReportMetric(float64((with-without).Nanoseconds())/chunk, "ns/syscall-added")
}

// BenchmarkPrograms reports the kernel's run time of each BPF program per
// run while b.N processes fork and exec /bin/true (BPF statistics enabled):
// the in-kernel cost of the sensor per exec, without the noise of an A/B
// comparison. Other processes on the machine add runs of their own.
// Each iteration also opens an unselected file ten times, so openat's
// figure is mostly the filter's cost on an ordinary open.
func BenchmarkPrograms(b *testing.B) {
	needKernel(b, false)
	stats, err := EnableRunStats()
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	p, err := Load(context.Background(), Config{IncludeSelf: true})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Read(ctx, func(*rules.Event) {}) }()
	// Each iteration also opens a file no filter selects, by a long
	// absolute path: the cost every open on the node pays.
	wd, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	plain := filepath.Join(wd, "e2e_bench_test.go")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 10; j++ {
			if fd, err := unix.Open(plain, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
			}
		}
	}
	b.StopTimer()
	cancel()
	<-done
	ps, err := p.ProgramStats()
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"sched_process_exec", "sched_process_exit", "sys_enter_clone", "sys_enter_openat"} {
		if v := ps[name]; v.Runs > 0 {
			b.ReportMetric(float64(v.Runtime.Nanoseconds())/float64(v.Runs), name+"-ns/run")
		}
	}
}
