package admission

import "testing"

func TestTuneGC(t *testing.T) {
	p0, l0 := gcSettings()
	restore := TuneGC(GCConfig{}, func(string) string { return "" })
	p, l := gcSettings()
	restore()
	if p != DefaultGCPercent || l != DefaultMemoryLimit {
		t.Errorf("defaults: GOGC %d GOMEMLIMIT %d, want %d %d", p, l, DefaultGCPercent, DefaultMemoryLimit)
	}
	if p1, l1 := gcSettings(); p1 != p0 || l1 != l0 {
		t.Errorf("restore: GOGC %d GOMEMLIMIT %d, want %d %d", p1, l1, p0, l0)
	}
	// The operator's environment wins.
	env := map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"}
	restore = TuneGC(GCConfig{GCPercent: 300, MemoryLimit: 50 << 20}, func(k string) string { return env[k] })
	p, l = gcSettings()
	restore()
	if p != p0 || l != l0 {
		t.Errorf("with GOGC and GOMEMLIMIT set: GOGC %d GOMEMLIMIT %d changed from %d %d", p, l, p0, l0)
	}
	restore = TuneGC(GCConfig{GCPercent: 300, MemoryLimit: 50 << 20}, func(string) string { return "" })
	p, l = gcSettings()
	restore()
	if p != 300 || l != 50<<20 {
		t.Errorf("explicit: GOGC %d GOMEMLIMIT %d", p, l)
	}
}
