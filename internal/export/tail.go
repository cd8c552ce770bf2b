// Package export streams ledger records to the tools security teams already run: JSON lines to a
// file or stdout, OpenTelemetry logs over OTLP/HTTP. A Tailer reads the ledger's store — never a
// hook inside Append, so a slow or absent sink cannot slow a decision — from the last exported
// sequence number, kept in a small state file, and hands batches to its Sink.
package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// Item is one ledger record as the store holds it: its seq, its exact bytes (the same redaction
// as the ledger, since these are the hashed bytes) and their decoding.
type Item struct {
	Seq    uint64
	Data   []byte
	Record *ledger.Record
}

// Sink delivers a batch. It returns nil only when every item is delivered (durably, where the
// sink can know); a Permanent error drops the batch instead of retrying it.
type Sink interface {
	Send(ctx context.Context, items []Item) error
	Close() error
}

// permanentError marks a batch the sink's receiver refused for good (retrying cannot help).
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that the Tailer drops the batch rather than retry it.
func Permanent(err error) error { return permanentError{err} }

// Options configure a Tailer.
type Options struct {
	// Name identifies the sink in logs and metrics.
	Name string
	// Store is the ledger's store, read only.
	Store ledger.View
	// StateFile keeps the next seq to export.
	StateFile string
	// Kinds selects records by ledger.Record.Event(); empty selects every kind.
	Kinds []ledger.Kind
	Sink  Sink
	// Batch bounds the records read and sent at once (default 512).
	Batch int
	// MaxLag bounds how far the sink may fall behind the ledger, in records; past it the oldest
	// are skipped and counted as dropped (default 100000).
	MaxLag uint64
	// Poll is how often the store is read for new records (default 1s).
	Poll time.Duration
	// MaxBackoff caps the wait between retries of a failed batch (default 30s).
	MaxBackoff time.Duration
	Log        *slog.Logger
}

// Tailer follows the ledger for one sink.
type Tailer struct {
	o     Options
	kinds map[ledger.Kind]bool
	next  atomic.Uint64

	exported atomic.Uint64
	dropped  atomic.Uint64
	lag      atomic.Uint64
	failing  atomic.Bool

	warnMu   sync.Mutex
	lastWarn map[string]time.Time // per warning: one kind never hides another
}

// Stats are a tailer's counters for metrics.
type Stats struct {
	Exported, Dropped, Lag uint64
	Failing                bool
}

// New checks o and reads the state file. Without one, the sink starts at the ledger's current
// end: it receives the records appended from its first start on, not the whole history.
func New(ctx context.Context, o Options) (*Tailer, error) {
	if o.Store == nil || o.Sink == nil || o.StateFile == "" {
		return nil, errors.New("export: store, sink and state file are required")
	}
	if o.Batch <= 0 {
		o.Batch = 512
	}
	if o.MaxLag == 0 {
		o.MaxLag = 100000
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Log = o.Log.With(slog.String("export", o.Name))
	t := &Tailer{o: o}
	if len(o.Kinds) > 0 {
		t.kinds = make(map[ledger.Kind]bool, len(o.Kinds))
		for _, k := range o.Kinds {
			t.kinds[k] = true
		}
	}
	next, ok, err := readState(o.StateFile)
	if err != nil {
		return nil, err
	}
	size, err := o.Store.Size(ctx)
	if err != nil {
		return nil, fmt.Errorf("export %s: ledger size: %w", o.Name, err)
	}
	switch {
	case !ok:
		next = size
		if err := writeState(o.StateFile, next); err != nil {
			return nil, err
		}
	case next > size:
		// The state belongs to another ledger (the data directory was replaced): follow this one.
		o.Log.Warn("export state is past the ledger's end; starting at the end", slog.Uint64("state", next), slog.Uint64("size", size))
		next = size
	}
	t.next.Store(next)
	return t, nil
}

// Stats returns the tailer's counters.
func (t *Tailer) Stats() Stats {
	return Stats{Exported: t.exported.Load(), Dropped: t.dropped.Load(), Lag: t.lag.Load(), Failing: t.failing.Load()}
}

// Next is the seq of the next record to export.
func (t *Tailer) Next() uint64 { return t.next.Load() }

// Run exports until ctx ends, then closes the sink. It never returns early: every failure is
// logged (once per interval), counted and retried.
func (t *Tailer) Run(ctx context.Context) {
	defer func() {
		if err := t.o.Sink.Close(); err != nil {
			t.o.Log.Warn("export sink close", slog.Any("error", err))
		}
	}()
	backoff := time.Duration(0)
	for {
		wait := t.o.Poll
		n, err := t.Step(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			backoff = min(max(2*backoff, t.o.Poll), t.o.MaxBackoff)
			wait = backoff
			t.warn("export failed; retrying", err)
		default:
			backoff = 0
			if n >= t.o.Batch {
				wait = 0 // a full batch: more may be waiting
			}
			// Otherwise the tailer has caught up: it waits a poll before it reads again, so
			// under steady load each step takes what a poll brought, and the per-step costs
			// (the store's size, the state file's fsync) are paid once a poll, not once for
			// every few records.
		}
		if wait > 0 {
			tm := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				tm.Stop()
				return
			case <-tm.C:
			}
		}
	}
}

// warn logs each warning (by its message) at most once a minute while its cause lasts. Each
// has its own minute: records pruned before they were exported are still reported while the
// sink's failures are retried, and the other way round.
func (t *Tailer) warn(msg string, err error) {
	now := time.Now()
	t.warnMu.Lock()
	if now.Sub(t.lastWarn[msg]) < time.Minute {
		t.warnMu.Unlock()
		return
	}
	if t.lastWarn == nil {
		t.lastWarn = map[string]time.Time{}
	}
	t.lastWarn[msg] = now
	t.warnMu.Unlock()
	s := t.Stats()
	t.o.Log.Warn(msg, slog.Any("error", err), slog.Uint64("lag", s.Lag), slog.Uint64("dropped", s.Dropped))
}

// based is a store that may have pruned its oldest records (ledger.Pruner's read side).
type based interface {
	Base(ctx context.Context) (size uint64, base []byte, ok bool, err error)
}

// errBatchFull stops a scan once a batch is full.
var errBatchFull = errors.New("batch full")

// Step reads at most one batch from the next seq, sends the selected records and, when the
// sink took them, saves the new position. It returns how many records it moved past.
func (t *Tailer) Step(ctx context.Context) (int, error) {
	size, err := t.o.Store.Size(ctx)
	if err != nil {
		t.failing.Store(true)
		return 0, fmt.Errorf("ledger size: %w", err)
	}
	next := t.Next()
	if size < next {
		size = next
	}
	if lag := size - next; lag > t.o.MaxLag {
		// The backlog is bounded: skip the oldest records rather than hold them all.
		skip := lag - t.o.MaxLag
		t.dropped.Add(skip)
		t.warn("export backlog over max_lag; oldest records skipped", fmt.Errorf("%d records not exported", skip))
		next += skip
		if err := t.advance(next); err != nil {
			return 0, err
		}
	}
	t.lag.Store(size - next)
	if size == next {
		t.failing.Store(false)
		return 0, nil
	}
	var (
		items []Item
		read  int
		end   = next
	)
	err = t.o.Store.Scan(ctx, next, func(e ledger.Entry) error {
		if e.Seq > end && read == 0 {
			// Retention pruned records this sink had not reached: they are in the archives,
			// not here. Count them as dropped and go on from the oldest record left.
			t.dropped.Add(e.Seq - end)
			t.warn("export: records pruned by retention before they were exported", fmt.Errorf("records %d to %d not exported", end, e.Seq-1))
			end = e.Seq
		}
		if e.Seq != end {
			return fmt.Errorf("ledger store returned seq %d, want %d", e.Seq, end)
		}
		end++
		read++
		r, err := ledger.ParseRecord(e.Data)
		if err != nil {
			return fmt.Errorf("record %d: %w", e.Seq, err)
		}
		if t.kinds == nil || t.kinds[r.Event()] {
			items = append(items, Item{Seq: e.Seq, Data: append([]byte(nil), e.Data...), Record: r})
		}
		if read >= t.o.Batch {
			return errBatchFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		t.failing.Store(true)
		return 0, fmt.Errorf("read ledger from %d: %w", next, err)
	}
	if read == 0 {
		// Nothing left below size: retention pruned everything this sink had not reached (the
		// live log now begins at its base). Count the gap and go on from the base.
		if b, ok := t.o.Store.(based); ok {
			base, _, pruned, err := b.Base(ctx)
			if err != nil {
				t.failing.Store(true)
				return 0, fmt.Errorf("ledger base: %w", err)
			}
			if pruned && base > end {
				t.dropped.Add(base - end)
				t.warn("export: records pruned by retention before they were exported", fmt.Errorf("records %d to %d not exported", end, base-1))
				end = base
			}
		}
	}
	if len(items) > 0 {
		if err := t.o.Sink.Send(ctx, items); err != nil {
			var perm permanentError
			if !errors.As(err, &perm) {
				t.failing.Store(true)
				return 0, err
			}
			t.dropped.Add(uint64(len(items)))
			t.warn("export receiver refused a batch; dropped", err)
			items = nil
		}
	}
	if err := t.advance(end); err != nil {
		return 0, err
	}
	t.exported.Add(uint64(len(items)))
	t.lag.Store(size - min(end, size))
	t.failing.Store(false)
	return read, nil
}

func (t *Tailer) advance(next uint64) error {
	if err := writeState(t.o.StateFile, next); err != nil {
		t.failing.Store(true)
		return err
	}
	t.next.Store(next)
	return nil
}

// readState reads the next seq; ok is false when there is no state file yet.
func readState(path string) (next uint64, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("export state: %w", err)
	}
	next, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("export state %s: want the next sequence number, got %q", path, clip(b))
	}
	return next, true, nil
}

func clip(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// writeState replaces the state file atomically (a crash leaves the old or the new position).
func writeState(path string, next uint64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("export state: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("export state: %w", err)
	}
	_, err = f.WriteString(strconv.FormatUint(next, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("export state: %w", err)
	}
	return nil
}
