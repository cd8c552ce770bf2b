package watch

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeSource is an event source the test drives.
type fakeSource struct {
	evs  chan event
	errs chan error
	held atomic.Bool // pretend events are still queued in the kernel
}

func newFake() *fakeSource {
	return &fakeSource{evs: make(chan event), errs: make(chan error)}
}
func (f *fakeSource) events() <-chan event { return f.evs }
func (f *fakeSource) errors() <-chan error { return f.errs }
func (f *fakeSource) close() error         { return nil }
func (f *fakeSource) pending() bool        { return f.held.Load() }

// content is a file the test rewrites, read by the watcher's Read.
type content struct {
	mu   sync.Mutex
	data string
}

func (c *content) set(s string) { c.mu.Lock(); c.data = s; c.mu.Unlock() }
func (c *content) read() (Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Snapshot{{Name: "p.yaml", Data: []byte(c.data)}}, nil
}

// applied records what Apply received.
type applied struct {
	mu  sync.Mutex
	got []string
}

func (a *applied) apply(s Snapshot) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, string(s[0].Data))
	return nil
}

func (a *applied) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...)
}

func TestStableSnapshotOnly(t *testing.T) {
	const settle = 100 * time.Millisecond
	tests := []struct {
		name string
		run  func(t *testing.T, src *fakeSource, c *content, a *applied)
		want []string
	}{
		{
			// The attack: half a file, written in place, then a pause far longer than the settle
			// interval. The writer still holds the file: nothing is loaded until it closes it.
			name: "writer pauses mid-file",
			run: func(t *testing.T, src *fakeSource, c *content, a *applied) {
				c.set("half")
				src.evs <- event{path: "/d/p.yaml", op: opWrite}
				time.Sleep(50 * settle)
				synctest.Wait()
				if got := a.list(); len(got) != 1 {
					t.Fatalf("loaded during the pause: %q", got)
				}
				c.set("whole")
				src.evs <- event{path: "/d/p.yaml", op: opWrite}
				src.evs <- event{path: "/d/p.yaml", op: opClose}
				time.Sleep(5 * settle)
			},
			want: []string{"v1", "whole"},
		},
		{
			// Content that keeps changing between the two reads is never applied mid-change.
			name: "content changes between reads",
			run: func(t *testing.T, src *fakeSource, c *content, a *applied) {
				src.evs <- event{path: "/d/p.yaml", op: opChange}
				for i := range 10 {
					c.set("moving" + string(rune('0'+i)))
					time.Sleep(settle * 7 / 10) // always a change between two reads
				}
				synctest.Wait()
				if got := a.list(); len(got) != 1 {
					t.Fatalf("loaded while changing: %q", got)
				}
				time.Sleep(5 * settle)
			},
			want: []string{"v1", "moving9"},
		},
		{
			// A change no event announces (a ConfigMap swap the watch did not see, a network
			// file system) is found by the periodic check.
			name: "periodic check without events",
			run: func(t *testing.T, src *fakeSource, c *content, a *applied) {
				c.set("polled")
				time.Sleep(time.Second + 5*settle)
			},
			want: []string{"v1", "polled"},
		},
		{
			// Irrelevant names (the ledger's files in the data directory) do not wake it, but
			// the kubelet's ..data entries do.
			name: "relevant names",
			run: func(t *testing.T, src *fakeSource, c *content, a *applied) {
				c.set("swapped")
				src.evs <- event{path: "/d/ledger.db-wal", op: opWrite}
				time.Sleep(5 * settle)
				synctest.Wait()
				if got := a.list(); len(got) != 1 {
					t.Fatalf("an irrelevant event caused a load: %q", got)
				}
				src.evs <- event{path: "/d/..data", op: opChange}
				time.Sleep(5 * settle)
			},
			want: []string{"v1", "swapped"},
		},
		{
			// The same content is not applied twice.
			name: "unchanged content",
			run: func(t *testing.T, src *fakeSource, c *content, a *applied) {
				src.evs <- event{path: "/d/p.yaml", op: opClose}
				time.Sleep(5 * settle)
			},
			want: []string{"v1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src := newFake()
				c := &content{data: "v1"}
				a := &applied{}
				poll := -1 * time.Second
				if tc.name == "periodic check without events" {
					poll = time.Second
				}
				w, err := newWatcher(Options{Read: c.read, Apply: a.apply, Settle: settle, Poll: poll,
					Relevant: func(p string) bool { return filepath.Ext(p) == ".yaml" }}, src)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				tc.run(t, src, c, a)
				synctest.Wait()
				w.Close()
				got := a.list()
				if len(got) != len(tc.want) {
					t.Fatalf("applied %q, want %q", got, tc.want)
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Fatalf("applied %q, want %q", got, tc.want)
					}
				}
			})
		})
	}
}

// Events the loop has not received yet (a reader the scheduler delayed) hold the snapshot back:
// one of them may be the truncation that voids both reads.
func TestPendingEventsHoldBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newFake()
		c := &content{data: "v1"}
		a := &applied{}
		w, err := newWatcher(Options{Read: c.read, Apply: a.apply, Settle: 10 * time.Millisecond, Poll: -1}, src)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		src.held.Store(true)
		c.set("")
		src.evs <- event{path: "/d/p.yaml", op: opChange}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := a.list(); len(got) != 1 {
			t.Fatalf("applied with events pending: %q", got)
		}
		c.set("v2")
		src.held.Store(false)
		src.evs <- event{path: "/d/p.yaml", op: opClose}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := a.list(); len(got) != 2 || got[1] != "v2" {
			t.Fatalf("applied %q, want v1 then v2", got)
		}
	})
}

// Close waits for a reload in flight: nothing calls back once it has returned.
func TestCloseWaitsForReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newFake()
		c := &content{data: "v1"}
		release := make(chan struct{})
		var inApply, after atomic.Bool
		var closed atomic.Bool
		first := true
		w, err := newWatcher(Options{Read: c.read, Settle: 10 * time.Millisecond, Poll: -1,
			Apply: func(Snapshot) error {
				if first {
					first = false
					return nil
				}
				inApply.Store(true)
				<-release
				if closed.Load() {
					after.Store(true)
				}
				return nil
			}}, src)
		if err != nil {
			t.Fatal(err)
		}
		c.set("v2")
		src.evs <- event{path: "/d/p.yaml", op: opClose}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if !inApply.Load() {
			t.Fatal("the reload did not start")
		}
		done := make(chan struct{})
		go func() {
			w.Close()
			closed.Store(true)
			close(done)
		}()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Close returned while a reload was still running")
		default:
		}
		close(release)
		<-done
		if after.Load() {
			t.Fatal("the reload finished after Close returned")
		}
	})
}

// The real event source: a file rewritten in place with a long pause is not loaded half written,
// and the new content is loaded once the writer closes it.
func TestInPlaceWriteWithPause(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	const settle = 30 * time.Millisecond
	w, err := New(Options{Dirs: []string{dir}, Settle: settle, Poll: 50 * time.Millisecond,
		Relevant: func(p string) bool { return p == path },
		Read: func() (Snapshot, error) {
			data, err := os.ReadFile(path)
			return Snapshot{{Name: path, Data: data}}, err
		},
		Apply: func(s Snapshot) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, string(s[0].Data))
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		return got[len(got)-1]
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("new first half\n"); err != nil {
		t.Fatal(err)
	}
	// Far longer than the settle interval and several periodic checks.
	for end := time.Now().Add(20 * settle); time.Now().Before(end); time.Sleep(settle / 3) {
		if l := last(); l != "old\n" {
			t.Fatalf("the half-written file was loaded: %q", l)
		}
	}
	if _, err := f.WriteString("second half\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the whole file", func() bool { return last() == "new first half\nsecond half\n" })
}

// The kubelet updates a ConfigMap volume by swapping the "..data" symlink: the visible file is a
// symlink that never changes, so only events on ..data (or the periodic check) can tell.
func TestConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	mkdata := func(name, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "p.yaml"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mkdata("..2026_01_01_00_00_00.1", "v1")
	if err := os.Symlink("..2026_01_01_00_00_00.1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "p.yaml")
	if err := os.Symlink("..data/p.yaml", path); err != nil {
		t.Fatal(err)
	}
	var cur atomic.Value
	w, err := New(Options{Dirs: []string{dir}, Settle: 20 * time.Millisecond, Poll: -1, // events only
		Relevant: func(p string) bool { return p == path },
		Read: func() (Snapshot, error) {
			data, err := os.ReadFile(path)
			return Snapshot{{Name: path, Data: data}}, err
		},
		Apply: func(s Snapshot) error { cur.Store(string(s[0].Data)); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// What the kubelet's atomic writer does: a new timestamped directory, a temporary symlink to
	// it, renamed over ..data.
	mkdata("..2026_01_01_00_01_00.2", "v2")
	if err := os.Symlink("..2026_01_01_00_01_00.2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the swapped ConfigMap", func() bool { return cur.Load() == "v2" })
}

func TestSnapshotSum(t *testing.T) {
	a := Snapshot{{Name: "ab", Data: []byte("c")}}
	b := Snapshot{{Name: "a", Data: []byte("bc")}}
	if a.Sum() == b.Sum() {
		t.Fatal("name/content boundary not part of the hash")
	}
	if a.Sum() != (Snapshot{{Name: "ab", Data: []byte("c")}}).Sum() {
		t.Fatal("hash not deterministic")
	}
}

func TestReloadReportsApplyError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newFake()
		c := &content{data: "v1"}
		errBad := errors.New("bad")
		var reported atomic.Int32
		w, err := newWatcher(Options{Read: c.read, Settle: 10 * time.Millisecond, Poll: -1,
			Apply: func(s Snapshot) error {
				if bytes.Equal(s[0].Data, []byte("broken")) {
					return errBad
				}
				return nil
			},
			OnError: func(err error) {
				if errors.Is(err, errBad) {
					reported.Add(1)
				}
			}}, src)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		c.set("broken")
		for range 3 { // the same broken content is reported once, not on every event
			src.evs <- event{path: "/d/p.yaml", op: opClose}
			time.Sleep(100 * time.Millisecond)
		}
		synctest.Wait()
		if n := reported.Load(); n != 1 {
			t.Fatalf("reported %d times, want 1", n)
		}
		if err := w.Reload(); !errors.Is(err, errBad) {
			t.Fatalf("Reload = %v", err)
		}
	})
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
