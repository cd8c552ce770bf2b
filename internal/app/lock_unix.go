//go:build unix

package app

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockDataDir takes the data directory's writer lock: an exclusive flock on LockFile, which then
// holds this process's id. The lock ends with the process, however it ends, so a crash leaves
// nothing to clean up.
func lockDataDir(dir string) (unlock func(), err error) {
	path := dataDirLockPath(dir)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &DataDirInUseError{Dir: dir, PID: readPID(f)}
		}
		return nil, fmt.Errorf("lock data directory %s: %w", path, err)
	}
	// The pid is for the message a second process prints; the flock is the lock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// DataDirInUse reports whether a gateway holds dir's writer lock now, without taking it and
// without creating or writing anything: the audit commands read a live ledger differently from a
// copy (see OpenLedgerStore).
func DataDirInUse(dir string) bool {
	f, err := os.Open(dataDirLockPath(dir))
	if err != nil {
		return false // no lock file: no gateway of this version has run there
	}
	defer f.Close()
	// A shared lock conflicts only with a writer's exclusive one; released at once.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

func readPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0 // not a pid: the message then names no holder
	}
	return pid
}
