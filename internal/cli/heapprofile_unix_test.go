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
