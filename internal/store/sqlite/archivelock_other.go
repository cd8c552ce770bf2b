//go:build !unix

package sqlite

import (
	"os"
	"path/filepath"
	"sync"
)

// Without flock the lock is this process's: one archiver per lock file path at a time.
var archiveLocks sync.Map // cleaned path → *sync.Mutex

func tryLockFile(f *os.File) (busy bool, err error) {
	m, _ := archiveLocks.LoadOrStore(filepath.Clean(f.Name()), new(sync.Mutex))
	return !m.(*sync.Mutex).TryLock(), nil
}

func unlockFile(f *os.File) {
	if m, ok := archiveLocks.Load(filepath.Clean(f.Name())); ok {
		m.(*sync.Mutex).Unlock()
	}
}
