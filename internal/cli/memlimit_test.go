package cli

import (
	"runtime/debug"
	"testing"
)

// TestScanMemoryLimitRestored: the soft memory limit a scan sets is the
// process's for the scan only (the CLI also runs in-process, in tests and
// in central), and GOMEMLIMIT, when set, is left alone.
func TestScanMemoryLimitRestored(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	run(t, "scan", "image", "--skip-db", "--format", "json", demoImage(t)).want(t, ExitOK)
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("memory limit %d after the scan, %d before", got, before)
	}

	prev := debug.SetMemoryLimit(1 << 40)
	defer debug.SetMemoryLimit(prev)
	runWith(t, runOpts{env: map[string]string{"GOMEMLIMIT": "1TiB"}}, "scan", "image", "--skip-db", "--format", "json", demoImage(t)).want(t, ExitOK)
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("memory limit %d with GOMEMLIMIT set, want it untouched", got)
	}
}
