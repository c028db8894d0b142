//go:build !unix

package image

import "time"

func cpuTime() time.Duration { return 0 }
