package app

import (
	"fmt"
	"path/filepath"
)

// LockFile is the data directory's writer lock: one gateway (serve, or the stdio wrapper) per
// data directory. Two on one SQLite ledger would each take the other's records for a crash to
// recover from, and deny with ledger_unavailable while the other holds the write lock.
const LockFile = "portcullis.lock"

func dataDirLockPath(dir string) string { return filepath.Join(dir, LockFile) }

// DataDirInUseError is a data directory another gateway process holds.
type DataDirInUseError struct {
	Dir string
	PID int // 0 when the holder's id could not be read
}

func (e *DataDirInUseError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("data directory %s is in use by another process; use a separate --data", e.Dir)
	}
	return fmt.Sprintf("data directory in use by pid %d; use a separate --data", e.PID)
}
