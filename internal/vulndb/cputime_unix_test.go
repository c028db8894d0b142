//go:build unix

package vulndb

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user+system) the test process has used. The
// benchmarks report it per operation beside wall time, because on a shared
// machine wall time mostly measures the other tenants.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
