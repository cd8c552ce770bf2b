//go:build unix

package inspect

import "syscall"

// processCPU returns the user+system CPU time the process has used, in nanoseconds. Benchmarks
// report it per operation beside wall time, because on a shared, loaded machine wall time
// measures the neighbours as much as the code.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
