// Package watch reloads a set of files only when they are complete and stable. It knows nothing
// of YAML, policies or configuration: a caller says which directories to watch, which names
// matter, how to read the set, and what to do with a stable snapshot of it.
//
// A file rewritten in place with a pause between writes is, during the pause, a valid shorter
// file; a reloader that parses it after a quiet interval can load something looser than both the
// old and the new version. So a snapshot is applied only when all of these hold:
//
//   - no relevant file has been written to since its writer last closed it (on Linux the watcher
//     sees IN_MODIFY and IN_CLOSE_WRITE; elsewhere this check is not available);
//   - two reads of the whole set, Settle apart and with no relevant event between them, give the
//     same bytes (the same SHA-256);
//   - those bytes differ from the last snapshot tried, so a rejected set is reported once.
//
// The exact bytes that were hashed are the ones handed to Apply: nothing is read again.
//
// Events wake the watcher for names the caller marks relevant and for the kubelet's "..data"
// entries (a Kubernetes ConfigMap volume swaps a symlink, so the files themselves never see an
// event); a periodic check of the content hash catches whatever the events miss.
package watch

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// File is one file of a snapshot.
type File struct {
	Name string
	Data []byte
}

// Snapshot is the whole set as read at one moment.
type Snapshot []File

// Sum is the SHA-256 of the snapshot's names and contents, each length-prefixed so two
// different sets can never encode the same.
func (s Snapshot) Sum() [32]byte {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		l := uint64(len(b))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write(b)
	}
	for _, f := range s {
		put([]byte(f.Name))
		put(f.Data)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Options configure a Watcher.
type Options struct {
	// Dirs are the directories to watch (not recursively).
	Dirs []string
	// Relevant says whether an event on this path (a full path) concerns the set. Events on
	// names beginning with ".." (the kubelet's atomic writer) always count.
	Relevant func(path string) bool
	// Read reads the whole set. An error counts as "not stable yet": it is retried after Settle
	// a few times, then reported.
	Read func() (Snapshot, error)
	// Apply receives a stable snapshot whose content differs from the last one tried. Its error
	// is reported to OnError; the same content is not tried again until it changes.
	Apply func(Snapshot) error
	// OnError reports a rejected snapshot, a read that kept failing, a writer that keeps a file
	// open, or a failing event source.
	OnError func(error)
	// Settle is the quiet interval after an event and the gap between the two reads that must
	// agree. Zero means 250ms.
	Settle time.Duration
	// Poll is the interval of the periodic content check. Zero means 5s; negative disables it.
	Poll time.Duration
}

// ErrWriterOpen is reported when a relevant file is still open for writing after a settle
// interval: the snapshot is not taken until the writer closes it.
var ErrWriterOpen = errors.New("a policy or configuration file is still open for writing; waiting for it to be closed")

// maxReadRetries bounds how often a failing read is retried before it is reported.
const maxReadRetries = 5

// event is what a backend tells the loop.
type event struct {
	path string
	op   op
}

type op uint8

const (
	opChange   op = iota // created, renamed, removed, attributes: the name now means new content
	opWrite              // written in place: a writer may still hold it open
	opClose              // a writer closed it
	opOverflow           // events were lost: check again, keep what is known of writers
)

// source is a platform's event backend.
type source interface {
	events() <-chan event
	errors() <-chan error
	// pending reports events the loop has not received yet: queued in the kernel, decoded but
	// not yet sent. A snapshot is not applied while any are pending: an event the scheduler
	// delayed (a truncation, say) must still be able to void the reads around it.
	pending() bool
	close() error
}

// Watcher watches a set of files and applies stable snapshots of it.
type Watcher struct {
	opts Options
	src  source
	mu   sync.Mutex // serialises Apply: the loop's and Reload's
	last [32]byte   // the content last tried (under mu)

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New reads the set, applies it (this first load must succeed) and starts watching.
func New(opts Options) (*Watcher, error) {
	return newWatcher(opts, nil)
}

func newWatcher(opts Options, src source) (*Watcher, error) {
	if opts.Settle <= 0 {
		opts.Settle = 250 * time.Millisecond
	}
	if opts.Poll == 0 {
		opts.Poll = 5 * time.Second
	}
	if opts.Relevant == nil {
		opts.Relevant = func(string) bool { return true }
	}
	if opts.OnError == nil {
		opts.OnError = func(error) {}
	}
	snap, err := opts.Read()
	if err != nil {
		return nil, fmt.Errorf("watch: initial read: %w", err)
	}
	if err := opts.Apply(snap); err != nil {
		return nil, err
	}
	w := &Watcher{opts: opts, last: snap.Sum(), done: make(chan struct{})}
	if src == nil {
		if src, err = newSource(opts.Dirs); err != nil {
			return nil, fmt.Errorf("watch: %w", err)
		}
	}
	w.src = src
	w.wg.Add(1)
	go w.loop()
	return w, nil
}

// Reload reads the set now and applies it whatever the last content was: an operator asked.
func (w *Watcher) Reload() error {
	snap, err := w.opts.Read()
	if err != nil {
		err = fmt.Errorf("watch: read: %w", err)
		w.opts.OnError(err)
		return err
	}
	return w.apply(snap, true)
}

func (w *Watcher) apply(snap Snapshot, force bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	sum := snap.Sum()
	if !force && sum == w.last {
		return nil
	}
	w.last = sum
	if err := w.opts.Apply(snap); err != nil {
		w.opts.OnError(err)
		return err
	}
	return nil
}

// Close stops watching and waits for a reload in flight to finish: no Apply or OnError runs
// after Close returns.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		close(w.done)
		w.closeErr = w.src.close()
		w.wg.Wait()
		// A Reload an operator started may still hold the lock; wait for it too.
		w.mu.Lock()
		//lint:ignore SA2001 an empty critical section is the point: wait for Apply to return
		w.mu.Unlock()
	})
	return w.closeErr
}

// relevant: a name the caller reads, or the kubelet's "..data" machinery.
func (w *Watcher) relevant(path string) bool {
	return strings.HasPrefix(filepath.Base(path), "..") || w.opts.Relevant(path)
}

// loop is the state machine: events arm a settle timer; when it fires the set is read and that
// read becomes the candidate; the next firing reads again and applies only if nothing happened in
// between and the bytes are the same.
func (w *Watcher) loop() {
	defer w.wg.Done()
	var (
		timer     = time.NewTimer(time.Hour)
		armed     bool
		candidate *[32]byte
		writers   = map[string]bool{} // relevant paths written since their last close
		retries   int
		waited    bool // ErrWriterOpen already reported for this wait
	)
	timer.Stop()
	arm := func() {
		timer.Reset(w.opts.Settle)
		armed = true
	}
	var poll <-chan time.Time
	if w.opts.Poll > 0 {
		t := time.NewTicker(w.opts.Poll)
		defer t.Stop()
		poll = t.C
	}
	evs, errs := w.src.events(), w.src.errors()
	for {
		select {
		case <-w.done:
			timer.Stop()
			return
		case ev, ok := <-evs:
			if !ok {
				evs = nil
				continue
			}
			if ev.op != opOverflow && !w.relevant(ev.path) {
				continue
			}
			switch ev.op {
			case opWrite:
				writers[ev.path] = true
			case opClose, opChange:
				delete(writers, ev.path)
			}
			candidate = nil // something moved: the next two reads must both come after it
			retries = 0
			arm()
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.opts.OnError(fmt.Errorf("watch: %w", err))
		case <-poll:
			if armed {
				continue // a check is already under way
			}
			snap, err := w.opts.Read()
			if err != nil || w.changed(snap) {
				candidate = nil
				arm()
			}
		case <-timer.C:
			armed = false
			if len(writers) > 0 {
				// Wait for the close (or a rename or removal): the file may be half written.
				if !waited {
					w.opts.OnError(fmt.Errorf("watch: %w: %s", ErrWriterOpen, strings.Join(slices.Sorted(maps.Keys(writers)), ", ")))
					waited = true
				}
				continue
			}
			waited = false
			snap, err := w.opts.Read()
			if err != nil {
				candidate = nil
				if retries++; retries <= maxReadRetries {
					arm()
				} else {
					w.opts.OnError(fmt.Errorf("watch: read (previous set keeps serving): %w", err))
					retries = 0
				}
				continue
			}
			retries = 0
			sum := snap.Sum()
			if candidate == nil || *candidate != sum {
				candidate = &sum
				arm()
				continue
			}
			if w.src.pending() {
				arm() // let the loop see them first; they reset the candidate if relevant
				continue
			}
			candidate = nil
			_ = w.apply(snap, false)
		}
	}
}

func (w *Watcher) changed(snap Snapshot) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return snap.Sum() != w.last
}
