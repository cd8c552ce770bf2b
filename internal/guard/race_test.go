//go:build race

package guard

// raceEnabled: the race detector's instrumentation allocates, so allocation counts are
// measured only without it.
const raceEnabled = true
