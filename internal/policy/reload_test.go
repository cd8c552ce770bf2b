package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Like an editor: write a temporary file, then rename it over the old one.
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func policyAllowing(tool string) string {
	return "agent_id: a\nrules:\n  - {name: allow_" + tool + ", tool: " + tool + ", action: ALLOW}\n"
}

func TestWatcherReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.yaml")
	writeFile(t, path, policyAllowing("one"))
	reloads := make(chan *Set, 16)
	errs := make(chan error, 16)
	w, err := NewWatcher([]string{dir}, WatchOptions{
		Debounce: 50 * time.Millisecond,
		OnReload: func(s *Set) { reloads <- s },
		OnError:  func(err error) { errs <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	eval := func(tool string) Action {
		return w.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: tool, Time: tue10}).Action
	}
	if eval("one") != Allow || eval("two") != Deny {
		t.Fatal("initial set not in force")
	}
	waitReload := func() {
		t.Helper()
		select {
		case <-reloads:
		case err := <-errs:
			t.Fatalf("unexpected reload error: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no reload within 10s")
		}
	}
	waitError := func() error {
		t.Helper()
		select {
		case s := <-reloads:
			t.Fatalf("a broken set was loaded: %v", s.Agents())
		case err := <-errs:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("no reload error within 10s")
		}
		return nil
	}

	// A change is picked up.
	writeFile(t, path, policyAllowing("two"))
	waitReload()
	if eval("one") != Deny || eval("two") != Allow {
		t.Fatal("new set not in force after reload")
	}

	// A broken file is rejected whole; the previous set keeps serving.
	before := w.Current()
	writeFile(t, path, "agent_id: a\nrules:\n  - {name: r, tool: three, action: ALOW}\n")
	err = waitError()
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "a.yaml:3:") {
		t.Errorf("reload error = %v", err)
	}
	if w.Current() != before || eval("two") != Allow {
		t.Error("the previous set did not keep serving")
	}

	// A second file that conflicts with the first (same agent) is rejected too.
	writeFile(t, path, policyAllowing("four"))
	waitReload()
	writeFile(t, filepath.Join(dir, "b.yaml"), policyAllowing("five"))
	err = waitError()
	if err == nil || !strings.Contains(err.Error(), "second policy for agent") {
		t.Errorf("reload error = %v", err)
	}
	if eval("four") != Allow || eval("five") != Deny {
		t.Error("the previous set did not keep serving")
	}
	if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	waitReload()

	// A burst of writes is debounced into fewer reloads, ending on the last content.
	for _, tool := range []string{"b1", "b2", "b3", "b4", "b5", "b6"} {
		if err := os.WriteFile(path, []byte(policyAllowing(tool)), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitReload()
	deadline := time.Now().Add(10 * time.Second)
	for eval("b6") != Allow && time.Now().Before(deadline) {
		select {
		case <-reloads:
		case <-time.After(100 * time.Millisecond):
		}
	}
	if eval("b6") != Allow {
		t.Error("the last write of the burst is not in force")
	}
	if n := len(reloads); n > 3 {
		t.Errorf("%d extra reloads for a burst of 6 writes: not debounced", n)
	}

	// Test files and editor temporaries do not trigger reloads.
	writeFile(t, filepath.Join(dir, "a_test.yaml"), "cases: []\n")
	select {
	case <-reloads:
		t.Error("a test file triggered a reload")
	case err := <-errs:
		t.Errorf("a test file triggered a reload error: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestWatcherInitialLoadFails(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), "agent_id: [\n")
	_, err := NewWatcher([]string{dir}, WatchOptions{})
	if !errors.Is(err, ErrNoSet) || !errors.Is(err, ErrInvalid) {
		t.Errorf("err = %v", err)
	}
}

func TestWatcherSingleFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "only.yml")
	writeFile(t, path, policyAllowing("one"))
	writeFile(t, filepath.Join(dir, "other.yaml"), "not: [valid\n")
	w, err := NewWatcher([]string{path}, WatchOptions{Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Reload(); err != nil {
		t.Fatalf("manual reload: %v", err)
	}
	writeFile(t, path, policyAllowing("two"))
	deadline := time.Now().Add(10 * time.Second)
	for w.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: "two", Time: tue10}).Action != Allow {
		if time.Now().After(deadline) {
			t.Fatal("single-file policy not reloaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close waits for a reload in flight: once it has returned, no callback runs.
func TestWatcherCloseWaitsForReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.yaml")
	writeFile(t, path, policyAllowing("one"))
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var closed, lateCallback atomic.Bool
	w, err := NewWatcher([]string{dir}, WatchOptions{Debounce: 10 * time.Millisecond,
		OnReload: func(*Set) {
			entered <- struct{}{}
			<-release
			if closed.Load() {
				lateCallback.Store(true)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, policyAllowing("two"))
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no reload within 10s")
	}
	done := make(chan struct{})
	go func() {
		_ = w.Close()
		closed.Store(true)
		close(done)
	}()
	select {
	case <-done:
		t.Error("Close returned while a reload was still calling back")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	<-done
	if lateCallback.Load() {
		t.Error("a reload called back after Close returned")
	}
}
