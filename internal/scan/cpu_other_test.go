//go:build !unix

package scan_test

import "time"

// cpuTime is not measured here; benchmarks report no cpu-ms/op.
func cpuTime() time.Duration { return 0 }
