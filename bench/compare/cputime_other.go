//go:build !linux

package compare

import "time"

// threadCPU is not available off Linux; the benchmark then reports no cpu-ns/op.
func threadCPU() (time.Duration, bool) { return 0, false }
