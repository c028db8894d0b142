//go:build unix

package rules

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) the test process has used. On
// a machine shared with other work, CPU time per event is a steadier figure
// than wall time, which grows with the load.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
