//go:build unix

package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// serve --heapprofile writes a heap profile (gzipped protobuf) each time the process is sent
// SIGUSR1, numbered, so a soak can diff two; nothing is written unasked.
func TestHeapProfileOnSignal(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "heap")
	var errs []error
	stop, ok := startHeapProfiles(context.Background(), prefix, func(err error) { errs = append(errs, err) })
	if !ok {
		t.Fatal("no signal for heap profiles on a Unix platform")
	}
	defer stop()
	if _, err := os.Stat(prefix + ".1"); !os.IsNotExist(err) {
		t.Fatalf("a profile before any signal: %v", err)
	}
	for n := 1; n <= 2; n++ {
		if err := syscall.Kill(os.Getpid(), heapProfileSignal); err != nil {
			t.Fatal(err)
		}
		path := prefix + "." + strconv.Itoa(n)
		var b []byte
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if b, _ = os.ReadFile(path); len(b) > 0 {
				break
			}
		}
		if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Fatalf("profile %d: %d bytes, not gzip (%v)", n, len(b), errs)
		}
	}
}

// A symlink planted at the temporary name a profile used to be written through is not followed:
// the file it points to (say, the ledger) is left as it was, and the profile is the operator's
// alone (0600).
func TestHeapProfileIgnoresPlantedSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "ledger.db")
	want := []byte("records the profile must not overwrite\n")
	if err := os.WriteFile(target, want, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "heap.1")
	if err := os.Symlink(target, path+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := writeHeapProfile(path); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(target); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("symlink target after a profile: %d bytes (%q…), %v; want it untouched", len(got), got[:min(len(got), 8)], err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("profile %v, want a regular file of mode 0600", fi.Mode())
	}
	left, _ := filepath.Glob(filepath.Join(dir, "heap.1.*.tmp"))
	if len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}
