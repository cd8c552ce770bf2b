//go:build unix

package cli

import (
	"os"
	"os/signal"
	"syscall"
)

// heapProfileSignal asks a running `serve --heapprofile` for a heap profile. A signal, not an
// endpoint: only the process's owner (or root) can send it, and nothing is exposed on a listener.
const heapProfileSignal = syscall.SIGUSR1

// notifyHeapProfile delivers heapProfileSignal on c.
func notifyHeapProfile(c chan<- os.Signal) bool {
	signal.Notify(c, heapProfileSignal)
	return true
}
