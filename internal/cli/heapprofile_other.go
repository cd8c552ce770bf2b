//go:build !unix

package cli

import "os"

// notifyHeapProfile reports that this platform has no signal to ask for a heap profile.
func notifyHeapProfile(chan<- os.Signal) bool { return false }
