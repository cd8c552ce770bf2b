//go:build !unix

package app

// lockDataDir does nothing where flock is not available: one writer per data directory is then
// the operator's to ensure.
func lockDataDir(string) (func(), error) { return func() {}, nil }

// DataDirInUse is false where the writer lock is not taken.
func DataDirInUse(string) bool { return false }
