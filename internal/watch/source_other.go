//go:build !linux

package watch

import (
	"fmt"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// Elsewhere the portable watcher serves. It reports no close of a writer, so only the two equal
// reads guard against a half-written file there.
type portable struct {
	w    *fsnotify.Watcher
	evs  chan event
	errs chan error
	done chan struct{}
}

func newSource(dirs []string) (source, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if err := w.Add(d); err != nil {
			w.Close()
			return nil, fmt.Errorf("watch %s: %w", d, err)
		}
	}
	p := &portable{w: w, evs: make(chan event, 64), errs: make(chan error, 4), done: make(chan struct{})}
	go p.run()
	return p, nil
}

func (p *portable) events() <-chan event { return p.evs }
func (p *portable) errors() <-chan error { return p.errs }

func (p *portable) pending() bool { return len(p.evs) > 0 || len(p.w.Events) > 0 }

func (p *portable) close() error {
	close(p.done)
	return p.w.Close()
}

func (p *portable) run() {
	defer close(p.evs)
	for {
		select {
		case ev, ok := <-p.w.Events:
			if !ok {
				return
			}
			select {
			case p.evs <- event{path: filepath.Clean(ev.Name), op: opChange}:
			case <-p.done:
				return
			}
		case err, ok := <-p.w.Errors:
			if !ok {
				return
			}
			select {
			case p.errs <- err:
			default:
			}
		}
	}
}
