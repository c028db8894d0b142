package admission

import (
	"runtime"
	"runtime/debug"
	"strconv"
)

// Garbage collector and scheduler settings of `bulwark admission serve`.
//
// A review allocates ~45 KB (the object is read three times: envelope,
// typed object, CEL's map, the last recycled; then the posture reports and
// CEL activations) over a live heap of a few MB, so at 500 reviews/s the
// default GOGC=100 collects several times a second. The collection's CPU is
// small (20-45 µs per review) but its mark phases are where the latency
// tail grows: in a runtime trace of the load test, goroutines waited p99
// 12 ms to run during mark phases against 2 ms outside them, and with the
// collector off the load test's p99 fell from 32-41 ms to 10-14 ms on the
// same loaded machine. Fewer cycles is the lever: GOGC=400 collects a
// quarter as often as the default. The soft memory limit (48 MiB of Go
// memory) makes the collector work harder, rather than the process grow,
// when the heap nears it: resident memory (Go memory plus the binary's
// pages, ~44 MB of the real binary's 62 MB at rest) stays under the 100 MB
// target, which leaves no room for a larger heap target. Measured by
// TestLoadLoopback: at 500 reviews/s 4 collections in 3 s, RSS 68-78 MB
// (peak ≤ 85 MB); with a 64 MiB limit the peak reached 101 MB. A
// deployment holding a much larger verdict cache should raise GOMEMLIMIT
// with its pod's memory limit (the collector may use up to half the CPU
// when the live heap sits at the limit).
//
// The scheduler runs on one P (GOMAXPROCS=1) by default, as it does in
// deploy/kubernetes/admission.yaml, whose CPU limit of 1 makes Go's runtime
// choose 1 there. A review is a chain of hand-offs between goroutines (the
// connection's, net/http's background read of HTTP/1.1, the netpoller);
// with a second P idle, each hand-off wakes another thread to run it. On
// one P they run one after the other on the thread already awake. At 500
// reviews/s on loopback (BenchmarkLoadLoopback, eight interleaved pairs on
// an idle machine): 1.29 time slices per review against 4.41, 13 µs
// waiting runnable against 64 µs, 0.295 ms CPU per review against 0.342,
// p99 4.10 ms against 4.80 ms (mean), lower in 7 pairs of 8. One P still
// served 2,500 reviews/s with nothing dropped (p99 23 ms, 37 ms on two Ps);
// a webhook given more CPU for more than that sets GOMAXPROCS (or RuntimeConfig.Procs).
const (
	DefaultGCPercent   = 400
	DefaultMemoryLimit = 48 << 20
	DefaultProcs       = 1
)

// RuntimeConfig tunes the collector and the scheduler; zero fields take the
// defaults above.
type RuntimeConfig struct {
	// GCPercent is GOGC (negative: collection off, bounded by MemoryLimit).
	GCPercent int
	// MemoryLimit is the soft limit in bytes (GOMEMLIMIT).
	MemoryLimit int64
	// Procs is GOMAXPROCS (negative: Go's own choice, the CPUs or the
	// container's CPU limit).
	Procs int
}

// TuneRuntime applies cfg to the process and returns a function restoring the
// previous settings. GOGC, GOMEMLIMIT and GOMAXPROCS in the environment
// (read through getenv) win over cfg: an operator who set them knows their
// pod's limits.
func TuneRuntime(cfg RuntimeConfig, getenv func(string) string) (restore func()) {
	if cfg.GCPercent == 0 {
		cfg.GCPercent = DefaultGCPercent
	}
	if cfg.MemoryLimit <= 0 {
		cfg.MemoryLimit = DefaultMemoryLimit
	}
	if cfg.Procs == 0 {
		cfg.Procs = DefaultProcs
	}
	prevPercent, prevLimit, prevProcs := -2, int64(-1), 0
	if getenv("GOGC") == "" {
		prevPercent = debug.SetGCPercent(cfg.GCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		prevLimit = debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	if getenv("GOMAXPROCS") == "" && cfg.Procs > 0 {
		prevProcs = runtime.GOMAXPROCS(cfg.Procs)
	}
	return func() {
		if prevPercent != -2 {
			debug.SetGCPercent(prevPercent)
		}
		if prevLimit >= 0 {
			debug.SetMemoryLimit(prevLimit)
		}
		if prevProcs > 0 {
			runtime.GOMAXPROCS(prevProcs)
		}
	}
}

// gcSettings reads the collector's current settings (for tests and logs).
func gcSettings() (percent int, limit int64) {
	percent = debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	return percent, debug.SetMemoryLimit(-1)
}

// RuntimeSummary describes the settings in force, for the startup log.
func RuntimeSummary() string {
	p, l := gcSettings()
	gogc := strconv.Itoa(p)
	if p < 0 {
		gogc = "off"
	}
	return "GOMAXPROCS=" + strconv.Itoa(runtime.GOMAXPROCS(0)) + " GOGC=" + gogc + " GOMEMLIMIT=" + strconv.FormatInt(l>>20, 10) + "MiB"
}
