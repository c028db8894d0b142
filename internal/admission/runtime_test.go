package admission

import (
	"runtime"
	"testing"
)

func TestTuneRuntime(t *testing.T) {
	p0, l0 := gcSettings()
	procs0 := runtime.GOMAXPROCS(0)
	if procs0 == DefaultProcs {
		runtime.GOMAXPROCS(DefaultProcs + 1) // so that setting the default is seen
		defer runtime.GOMAXPROCS(procs0)
		procs0 = DefaultProcs + 1
	}
	restore := TuneRuntime(RuntimeConfig{}, func(string) string { return "" })
	p, l := gcSettings()
	procs := runtime.GOMAXPROCS(0)
	summary := RuntimeSummary()
	restore()
	if p != DefaultGCPercent || l != DefaultMemoryLimit || procs != DefaultProcs {
		t.Errorf("defaults: GOGC %d GOMEMLIMIT %d GOMAXPROCS %d, want %d %d %d", p, l, procs, DefaultGCPercent, DefaultMemoryLimit, DefaultProcs)
	}
	if want := "GOMAXPROCS=1 GOGC=400 GOMEMLIMIT=48MiB"; summary != want {
		t.Errorf("summary %q, want %q", summary, want)
	}
	if p1, l1 := gcSettings(); p1 != p0 || l1 != l0 || runtime.GOMAXPROCS(0) != procs0 {
		t.Errorf("restore: GOGC %d GOMEMLIMIT %d GOMAXPROCS %d, want %d %d %d", p1, l1, runtime.GOMAXPROCS(0), p0, l0, procs0)
	}
	// The operator's environment wins.
	env := map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB", "GOMAXPROCS": "4"}
	restore = TuneRuntime(RuntimeConfig{GCPercent: 300, MemoryLimit: 50 << 20, Procs: 3}, func(k string) string { return env[k] })
	p, l = gcSettings()
	procs = runtime.GOMAXPROCS(0)
	restore()
	if p != p0 || l != l0 || procs != procs0 {
		t.Errorf("with GOGC, GOMEMLIMIT and GOMAXPROCS set: GOGC %d GOMEMLIMIT %d GOMAXPROCS %d changed from %d %d %d", p, l, procs, p0, l0, procs0)
	}
	restore = TuneRuntime(RuntimeConfig{GCPercent: 300, MemoryLimit: 50 << 20, Procs: 3}, func(string) string { return "" })
	p, l = gcSettings()
	procs = runtime.GOMAXPROCS(0)
	restore()
	if p != 300 || l != 50<<20 || procs != 3 {
		t.Errorf("explicit: GOGC %d GOMEMLIMIT %d GOMAXPROCS %d", p, l, procs)
	}
	// Procs < 0 leaves Go's own choice.
	restore = TuneRuntime(RuntimeConfig{Procs: -1}, func(string) string { return "" })
	procs = runtime.GOMAXPROCS(0)
	restore()
	if procs != procs0 {
		t.Errorf("Procs -1: GOMAXPROCS %d, want %d unchanged", procs, procs0)
	}
}
