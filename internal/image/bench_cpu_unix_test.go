//go:build unix

package image

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user+system) this process has used. Benchmarks
// report it per op because the target is about CPU, and wall time
// is meaningless on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
