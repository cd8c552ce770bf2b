package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portcullis-ai/portcullis/internal/watch"
)

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Debounce is the settle interval: how long the files must be quiet before they are read,
	// and the gap between the two reads that must agree byte for byte before a set is loaded.
	// Zero means 250ms.
	Debounce time.Duration
	// Poll is the interval of the periodic content check that catches changes no event
	// announced (a ConfigMap volume, a network file system). Zero means 5s; negative disables it.
	Poll time.Duration
	// OnReload is called with the new set after each successful swap.
	OnReload func(*Set)
	// OnError is called when a reload is rejected (the previous set keeps serving), a writer
	// keeps a file open, or the file watcher fails.
	OnError func(error)
}

// Watcher serves the current compiled set of a policy directory or files and reloads it when
// they change and are stable (see package watch: a file still open for writing, or whose bytes
// differ between two reads a settle interval apart, is never loaded). The new set is compiled off
// to the side from the exact bytes checked and swapped in atomically; a set with any error is
// rejected whole and the previous one keeps serving. In-flight evaluations finish on the set they
// loaded.
type Watcher struct {
	paths []string
	opts  WatchOptions
	cur   atomic.Pointer[Set]
	w     *watch.Watcher
}

// ErrNoSet is returned by NewWatcher when the initial load fails.
var ErrNoSet = errors.New("no valid policy set")

// NewWatcher loads paths (the initial load must succeed) and starts watching them.
func NewWatcher(paths []string, opts WatchOptions) (*Watcher, error) {
	pw := &Watcher{paths: paths, opts: opts}
	initial := true
	dirs, err := WatchDirs(paths)
	if err != nil {
		return nil, fmt.Errorf("watch policy: %w", err)
	}
	w, err := watch.New(watch.Options{
		Dirs:     dirs,
		Relevant: func(name string) bool { return Relevant(paths, name) },
		Read:     func() (watch.Snapshot, error) { return ReadSnapshot(paths) },
		Apply: func(snap watch.Snapshot) error {
			set, err := LoadSources(Sources(snap))
			if err != nil {
				if initial {
					return fmt.Errorf("watch policy: %w: %w", ErrNoSet, err)
				}
				return fmt.Errorf("reload policy (previous set keeps serving): %w", err)
			}
			pw.cur.Store(set)
			if !initial && pw.opts.OnReload != nil {
				pw.opts.OnReload(set)
			}
			return nil
		},
		OnError: func(err error) {
			if pw.opts.OnError != nil {
				pw.opts.OnError(err)
			}
		},
		Settle: opts.Debounce,
		Poll:   opts.Poll,
	})
	if err != nil {
		if !errors.Is(err, ErrNoSet) {
			err = fmt.Errorf("watch policy: %w: %w", ErrNoSet, err)
		}
		return nil, err
	}
	initial = false
	pw.w = w
	return pw, nil
}

// Current returns the set in force now. It never returns nil.
func (w *Watcher) Current() *Set { return w.cur.Load() }

// Evaluate decides req against the set in force now.
func (w *Watcher) Evaluate(req *Request) Decision { return w.cur.Load().Evaluate(req) }

// Reload loads and swaps the set now. On error the previous set stays and the error is
// returned (and reported to OnError).
func (w *Watcher) Reload() error { return w.w.Reload() }

// Close stops watching and waits for a reload in flight: OnReload and OnError are not called
// after it returns. The last set stays readable through Current.
func (w *Watcher) Close() error { return w.w.Close() }

// WatchDirs are the directories to watch for paths: a directory itself, a file's parent (editors
// and deploy tools replace a file by renaming a new one over it, which would end a watch on the
// old inode).
func WatchDirs(paths []string) ([]string, error) {
	seen := map[string]bool{}
	var dirs []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		d := filepath.Clean(p)
		if !st.IsDir() {
			d = filepath.Dir(d)
		}
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}

// Relevant says whether an event on name concerns the policy files paths name: a named file, or
// a *.yaml/*.yml file (not a test file, not hidden) in a named directory.
func Relevant(paths []string, name string) bool {
	name = filepath.Clean(name)
	base := filepath.Base(name)
	for _, p := range paths {
		if filepath.Clean(p) == name {
			return true
		}
	}
	if strings.HasPrefix(base, ".") || IsTestFile(base) {
		return false
	}
	if !strings.HasSuffix(base, ".yaml") && !strings.HasSuffix(base, ".yml") {
		return false
	}
	for _, p := range paths {
		if filepath.Clean(p) == filepath.Dir(name) {
			return true
		}
	}
	return false
}

// ReadSnapshot reads the policy files paths name, for a watch.Watcher.
func ReadSnapshot(paths []string) (watch.Snapshot, error) {
	srcs, err := ReadSources(paths...)
	if err != nil {
		return nil, err
	}
	snap := make(watch.Snapshot, len(srcs))
	for i, s := range srcs {
		snap[i] = watch.File{Name: s.Name, Data: s.Data}
	}
	return snap, nil
}

// Sources turns a snapshot back into policy sources.
func Sources(snap watch.Snapshot) []Source {
	srcs := make([]Source, len(snap))
	for i, f := range snap {
		srcs[i] = Source{Name: f.Name, Data: f.Data}
	}
	return srcs
}
