//go:build unix

package app

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLockDataDir(t *testing.T) {
	dir := t.TempDir()
	if DataDirInUse(dir) {
		t.Fatal("in use before any lock")
	}
	unlock, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !DataDirInUse(dir) {
		t.Error("not in use while locked")
	}
	// flock locks belong to the open file, so a second open in this process conflicts like
	// another process would.
	_, err = lockDataDir(dir)
	var inUse *DataDirInUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() {
		t.Fatalf("second lock: %v, want in use by pid %d", err, os.Getpid())
	}
	unlock()
	if DataDirInUse(dir) {
		t.Error("in use after unlock")
	}
	unlock, err = lockDataDir(dir)
	if err != nil {
		t.Fatalf("relock: %v", err)
	}
	unlock()
}

// FuzzReadPID: whatever the lock file holds (a torn write, another program's content), reading
// the holder's pid never fails the message: a pid or 0.
func FuzzReadPID(f *testing.F) {
	for _, s := range []string{"4242\n", "", "\n", "-1", "99999999999999999999", "12 34", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := filepath.Join(t.TempDir(), LockFile)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		if pid := readPID(fh); pid < 0 {
			t.Errorf("pid %d from %q", pid, s)
		}
	})
}
