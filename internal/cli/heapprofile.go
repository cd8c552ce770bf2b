package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
)

// startHeapProfiles writes a heap profile to prefix.N (N = 1, 2, …) each time the process is
// signalled (SIGUSR1), until the returned function runs. A soak test takes two at different times
// and diffs them (`go tool pprof -base`) to see what grows. A collection runs first so that the
// profile's in-use figures are of the live heap, not of garbage not yet collected. It reports
// whether the platform can deliver the signal.
func startHeapProfiles(ctx context.Context, prefix string, onErr func(error)) (stop func(), ok bool) {
	c := make(chan os.Signal, 1)
	if !notifyHeapProfile(c) {
		return func() {}, false
	}
	// One sample per 32 KiB allocated rather than the runtime's 512 KiB: a diff of two profiles
	// minutes apart must resolve growth of a few hundred KiB. Set before the gateway allocates
	// its state, so that state is sampled at this rate too.
	runtime.MemProfileRate = heapProfileRate
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-c:
			}
			if err := writeHeapProfile(fmt.Sprintf("%s.%d", prefix, n)); err != nil {
				onErr(err)
			}
		}
	}()
	return func() {
		signal.Stop(c)
		cancel()
		wg.Wait()
	}, true
}

// heapProfileRate is the heap profile's sampling interval in bytes under --heapprofile.
const heapProfileRate = 32 << 10

// writeHeapProfile collects, then writes the heap profile to path (written whole or not at all:
// a reader polling for the file never sees half of it). The temporary file has a random name and
// is created exclusively, mode 0600: a fixed name could be planted beforehand as a symlink to a
// file of the gateway's (the ledger), which the profile would then truncate, and a heap profile
// names the gateway's code and data paths, for its operator only.
func writeHeapProfile(path string) error {
	runtime.GC()
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
