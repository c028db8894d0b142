package probe

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
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
// container without the sensor and 20,000 with it (loaded, reading, rules
// evaluated), interleaved in chunks in one run so machine load hits both
// alike, and reports the overhead. Run with -benchtime=1x.
func BenchmarkExecOverhead(b *testing.B) {
	needKernel(b, true)
	eng := defaultEngine(b)
	c := runctest.Start(b, runctest.Options{})
	ctx := context.Background()
	const total, chunk = 20000, 2500
	script := "i=0; while [ $i -lt " + strconv.Itoa(chunk) + " ]; do /bin/true; i=$((i+1)); done"
	root, err := CgroupRoot()
	if err != nil {
		b.Fatal(err)
	}
	// CPU time is measured besides wall time: on a shared, oversubscribed
	// machine the wall clock mostly measures the neighbours. The container's
	// cgroup CPU includes the BPF programs (they run in its context); the
	// sensor's own CPU (reader, decoder, rules) is this process's rusage.
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
	var cpuWithout, cpuWith, cpuSensor time.Duration
	run := func(sensor bool) time.Duration {
		c0, s0 := cgCPU(), selfCPU()
		t0 := time.Now()
		r, err := c.Sh(ctx, script)
		if err != nil || r.ExitCode != 0 {
			b.Fatalf("exec loop: %+v %v", r, err)
		}
		d := time.Since(t0)
		if sensor {
			cpuWith += cgCPU() - c0
			cpuSensor += selfCPU() - s0
		} else {
			cpuWithout += cgCPU() - c0
		}
		return d
	}
	run(false) // warm up
	cpuWithout = 0
	var without, with time.Duration
	var execs atomic.Int64
	// BULWARK_PROBE_SKIP (comma-separated attach points) measures the
	// share of each program: e.g. every sys_enter_* to see exec/exit alone.
	// BULWARK_PROBE_SKIP=syscalls skips every classic syscall tracepoint.
	var skip []string
	if v := os.Getenv("BULWARK_PROBE_SKIP"); v == "syscalls" {
		skip = SyscallAttachPoints()
	} else if v != "" {
		skip = strings.Split(v, ",")
	}
	for i := 0; i < total/chunk; i++ {
		without += run(false)

		p, err := Load(ctx, Config{Skip: skip})
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			var dst []rules.Match
			p.Read(rctx, func(ev *rules.Event) {
				if ev.Type == rules.EventExecve && ev.Container.ID == c.ID {
					execs.Add(1)
				}
				dst = eng.Evaluate(ev, dst[:0])
			})
		}()
		with += run(true)
		time.Sleep(100 * time.Millisecond) // let the reader drain
		cancel()
		<-done
		st, _ := p.Stats()
		if st.Lost > 0 {
			b.Errorf("lost %d events", st.Lost)
		}
		p.Close()
	}
	if n := execs.Load(); n < total {
		b.Errorf("saw %d container execs, want at least %d", n, total)
	}
	b.ReportMetric(without.Seconds(), "s-without")
	b.ReportMetric(with.Seconds(), "s-with")
	b.ReportMetric(100*(with.Seconds()-without.Seconds())/without.Seconds(), "overhead-%")
	if cpuWithout > 0 {
		b.ReportMetric(100*(cpuWith+cpuSensor-cpuWithout).Seconds()/cpuWithout.Seconds(), "cpu-overhead-%")
		b.ReportMetric(100*(cpuWith-cpuWithout).Seconds()/cpuWithout.Seconds(), "kernel-cpu-overhead-%")
	}
}
