//go:build !unix

package vulndb

import "time"

func processCPU() time.Duration { return 0 }
