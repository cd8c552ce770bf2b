package policy

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Debounce is how long the files must be quiet before a reload: editors write a file in
	// bursts (truncate, write, rename, chmod). Zero means 100ms.
	Debounce time.Duration
	// OnReload is called with the new set after each successful swap.
	OnReload func(*Set)
	// OnError is called when a reload is rejected (the previous set keeps serving) or the
	// file watcher fails.
	OnError func(error)
}

// Watcher serves the current compiled set of a policy directory or files and reloads it when
// they change: the new set is compiled off to the side and swapped in atomically; a set with
// any error is rejected whole and the previous one keeps serving. In-flight evaluations finish
// on the set they loaded.
type Watcher struct {
	paths []string
	opts  WatchOptions
	cur   atomic.Pointer[Set]
	fsw   *fsnotify.Watcher
	deb   *debouncer
	mu    sync.Mutex // serialises reloads so an older load never overwrites a newer one

	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup
}

// ErrNoSet is returned by NewWatcher when the initial load fails.
var ErrNoSet = errors.New("no valid policy set")

// NewWatcher loads paths (the initial load must succeed) and starts watching them.
func NewWatcher(paths []string, opts WatchOptions) (*Watcher, error) {
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	set, err := Load(paths...)
	if err != nil {
		return nil, fmt.Errorf("watch policy: %w: %w", ErrNoSet, err)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch policy: %w", err)
	}
	w := &Watcher{paths: paths, opts: opts, fsw: fsw, done: make(chan struct{})}
	w.cur.Store(set)
	// Watch directories, not files: editors replace a file by renaming a new one over it, which
	// would silently end a watch on the old inode.
	dirs := map[string]bool{}
	for _, p := range paths {
		names, err := ExpandPaths(p)
		if err != nil {
			fsw.Close()
			return nil, fmt.Errorf("watch policy: %w", err)
		}
		if len(names) == 1 && names[0] == p {
			dirs[filepath.Dir(p)] = true
		} else {
			dirs[p] = true
		}
	}
	for d := range dirs {
		if err := fsw.Add(d); err != nil {
			fsw.Close()
			return nil, fmt.Errorf("watch policy %s: %w", d, err)
		}
	}
	w.deb = newDebouncer(opts.Debounce, w.reload)
	w.wg.Add(1)
	go w.loop()
	return w, nil
}

// Current returns the set in force now. It never returns nil.
func (w *Watcher) Current() *Set { return w.cur.Load() }

// Evaluate decides req against the set in force now.
func (w *Watcher) Evaluate(req *Request) Decision { return w.cur.Load().Evaluate(req) }

// Reload loads and swaps the set now. On error the previous set stays and the error is
// returned (and reported to OnError).
func (w *Watcher) Reload() error { return w.reload() }

func (w *Watcher) reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	set, err := Load(w.paths...)
	if err != nil {
		err = fmt.Errorf("reload policy (previous set keeps serving): %w", err)
		if w.opts.OnError != nil {
			w.opts.OnError(err)
		}
		return err
	}
	w.cur.Store(set)
	if w.opts.OnReload != nil {
		w.opts.OnReload(set)
	}
	return nil
}

// Close stops watching. The last set stays readable through Current.
func (w *Watcher) Close() error {
	var err error
	w.closeOnce.Do(func() {
		close(w.done)
		err = w.fsw.Close()
		w.wg.Wait()
		w.deb.stop()
	})
	return err
}

func (w *Watcher) relevant(name string) bool {
	base := filepath.Base(name)
	if strings.HasPrefix(base, ".") || IsTestFile(base) {
		return false
	}
	if !strings.HasSuffix(base, ".yaml") && !strings.HasSuffix(base, ".yml") {
		return false
	}
	for _, p := range w.paths {
		if filepath.Clean(p) == filepath.Clean(name) || filepath.Clean(p) == filepath.Dir(name) {
			return true
		}
	}
	return false
}

func (w *Watcher) loop() {
	defer w.wg.Done()
	for {
		select {
		case <-w.done:
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if w.relevant(ev.Name) {
				w.deb.trigger()
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			if w.opts.OnError != nil {
				w.opts.OnError(fmt.Errorf("watch policy: %w", err))
			}
		}
	}
}

// debouncer calls fn once after a burst of triggers has been quiet for d.
type debouncer struct {
	d  time.Duration
	fn func() error
	mu sync.Mutex
	t  *time.Timer
}

func newDebouncer(d time.Duration, fn func() error) *debouncer { return &debouncer{d: d, fn: fn} }

func (b *debouncer) trigger() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.t == nil {
		b.t = time.AfterFunc(b.d, func() { _ = b.fn() })
		return
	}
	b.t.Reset(b.d)
}

func (b *debouncer) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.t != nil {
		b.t.Stop()
	}
}
