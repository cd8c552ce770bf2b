package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// The app's lifecycle, after Caddy's: Open provisions every part (opens it, builds it from the
// configuration) and validates it — a part that cannot be built fails Open before anything runs
// in the background — then starts the parts' background work, in the order they were
// registered. Close stops every part in the reverse order: background work first (it may still
// write to what was opened before it), then what was opened (the ledger before its store, the
// stores before the data directory's lock). Serve only serves HTTP: whatever embeds the app
// (`serve`, the stdio wrapper with or without --listen) gets the same running parts.

// part is one registered piece of the app.
type part struct {
	name string
	// start launches the part's background work (nil: nothing to start; the part was running as
	// soon as it was provisioned, e.g. an open store).
	start func(ctx context.Context) error
	// stop ends the part and releases what it holds; called once, only for a part that started.
	stop    func(ctx context.Context) error
	started bool
}

// lifecycle holds the parts in the order they were registered.
type lifecycle struct {
	mu      sync.Mutex
	parts   []*part
	stopped bool
}

// opened registers a resource Open has already provisioned: stop closes it.
func (l *lifecycle) opened(name string, stop func(ctx context.Context) error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parts = append(l.parts, &part{name: name, stop: stop, started: true})
}

// background registers work that runs until the app closes: start launches run on its own
// goroutine with a context that Close cancels, and Close waits for run to return.
func (l *lifecycle) background(name string, run func(ctx context.Context)) {
	var (
		cancel context.CancelFunc
		done   chan struct{}
	)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parts = append(l.parts, &part{name: name,
		start: func(ctx context.Context) error {
			// The work outlives Open's context (a request's, a command's): only Close ends it.
			var rctx context.Context
			rctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
			done = make(chan struct{})
			go func() {
				defer close(done)
				run(rctx)
			}()
			return nil
		},
		stop: func(ctx context.Context) error {
			cancel()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return fmt.Errorf("did not stop: %w", ctx.Err())
			}
		},
	})
}

// start starts every part not started yet, in order. When one fails, the parts already started
// are stopped again (Close does that) and the error names the part.
func (l *lifecycle) start(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return errors.New("start after close")
	}
	for _, p := range l.parts {
		if p.started || p.start == nil {
			p.started = true
			continue
		}
		if err := p.start(ctx); err != nil {
			return fmt.Errorf("start %s: %w", p.name, err)
		}
		p.started = true
	}
	return nil
}

// stop stops every started part in the reverse order of registration, each once; failures are
// logged and the rest still stop.
func (l *lifecycle) stop(ctx context.Context, log *slog.Logger) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	for i := len(l.parts) - 1; i >= 0; i-- {
		p := l.parts[i]
		if !p.started {
			continue
		}
		p.started = false
		if err := p.stop(ctx); err != nil {
			log.Warn("stop "+p.name, slog.Any("error", err))
		}
	}
}

// names lists the registered parts, in order (for tests and diagnostics).
func (l *lifecycle) names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.parts))
	for i, p := range l.parts {
		out[i] = p.name
	}
	return out
}
