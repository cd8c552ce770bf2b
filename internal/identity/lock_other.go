//go:build !unix

package identity

// lockFile is a no-op where flock does not exist: there, only one process may write the key
// file at a time (the in-process mutex still serialises writers of one process).
func lockFile(string) (func(), error) { return func() {}, nil }
