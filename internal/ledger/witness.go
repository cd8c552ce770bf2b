package ledger

// This file keeps the latest checkpoint the ledger signed outside its store: the witness, a
// file beside the signing key. Whoever can write the store but does not hold the key cannot
// sign a checkpoint, but can delete checkpoints, and records with them, and rewrite what no
// remaining checkpoint covers. The store alone cannot tell that from a log that simply ended
// there; the witness can. At start the ledger refuses a store that is behind its witness or
// disagrees with it, so it never signs a checkpoint over a history it did not write.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// UnsignedGrace is added to the checkpoint interval when bounding how long records may stay
// after the newest checkpoint: it absorbs a slow commit, the writer's tick and clocks that
// differ a little between replicas (or between the gateway and the verifier).
const UnsignedGrace = 5 * time.Second

// witness writes the newest checkpoint it is offered to its file, off the commit path: a
// checkpoint is offered only once the store has committed it, so the file may lag the store
// (a crash between the two) but is never ahead of it.
type witness struct {
	path string
	mu   sync.Mutex
	next []byte // the newest note not yet written; nil when there is none
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	err  atomic.Pointer[error] // the last write's failure, nil once a write succeeded
}

func newWitness(path string) *witness {
	return &witness{path: path, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// offer hands the witness a checkpoint the store has committed. It never blocks.
func (w *witness) offer(n []byte) {
	w.mu.Lock()
	w.next = n
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run writes what is offered until stopped, then writes what is left.
func (w *witness) run() {
	defer close(w.done)
	for {
		select {
		case <-w.kick:
			w.write()
		case <-w.stop:
			w.write()
			return
		}
	}
}

// write writes the newest offered checkpoint atomically: a temporary file, fsync, rename, fsync
// of the directory. A half-written witness would refuse the next start.
func (w *witness) write() {
	w.mu.Lock()
	n := w.next
	w.next = nil
	w.mu.Unlock()
	if n == nil {
		return
	}
	if err := writeFileSync(w.path, n, 0o644); err != nil {
		err = fmt.Errorf("ledger witness: %w", err)
		w.err.Store(&err)
		return
	}
	w.err.Store(nil)
}

// close writes the last checkpoint offered and stops; it returns the last write's failure.
func (w *witness) close() error {
	close(w.stop)
	<-w.done
	return w.Err()
}

// Err returns the last write's failure, or nil.
func (w *witness) Err() error {
	if p := w.err.Load(); p != nil {
		return *p
	}
	return nil
}

// witnessFix tells the operator what to do when the store and the witness disagree.
const witnessFix = "if the ledger store was restored from a backup on purpose, move the witness aside " +
	"(keep it: it is a signed record of what the log held) and start again; otherwise the store was " +
	"changed by someone without the ledger key — keep it as evidence and check it with " +
	"'portcullis audit verify --trusted-checkpoint <the witness>'"

// readWitness reads the witness at path: ok is false when there is none. A witness that is
// not a checkpoint of this log, signed with its keys, is an error: it cannot vouch for anything.
func readWitness(path string, vs note.Verifiers, origin string) (c Checkpoint, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("%w: read the witness %s: %v", ErrInconsistent, path, err)
	}
	c, _, err = OpenCheckpoint(b, vs)
	if err != nil {
		return c, false, fmt.Errorf("%w: the witness %s is not a checkpoint signed by this ledger's keys: %v", ErrInconsistent, path, err)
	}
	if c.Origin != origin {
		return c, false, fmt.Errorf("%w: the witness %s is a checkpoint of another log (%s, this one is %s)", ErrInconsistent, path, c.Origin, origin)
	}
	return c, true, nil
}

// checkWitness compares the witness with the store whose latest signed checkpoint is latest
// (nil: none). The store must contain the witness's tree: a checkpoint of the same size and
// root stored, and the records from there on hashing to latest's root — the consistency of the
// witness with the store, recomputed from the stored frontier at the witness's size rather than
// from the whole log. Only the tail from the witness to latest is read; on a single writer the
// two are the same checkpoint, or a few apart after a crash.
func (l *Ledger) checkWitness(ctx context.Context, st Store, latest *Checkpoint) error {
	if l.wit == nil {
		return nil
	}
	w, ok, err := readWitness(l.wit.path, l.opts.Verifiers, l.origin)
	if err != nil || !ok {
		return err
	}
	behind := func(has string) error {
		return fmt.Errorf("%w: the ledger store is behind the witness %s: %s, but this gateway signed a checkpoint of %d records; %s",
			ErrInconsistent, l.wit.path, has, w.Size, witnessFix)
	}
	disagree := func(why string) error {
		return fmt.Errorf("%w: the ledger store disagrees with the witness %s (a checkpoint of %d records this gateway signed): %s; %s",
			ErrInconsistent, l.wit.path, w.Size, why, witnessFix)
	}
	if latest == nil {
		return behind("it has no signed checkpoint")
	}
	if w.Size > latest.Size {
		return behind(fmt.Sprintf("its latest signed checkpoint covers %d records", latest.Size))
	}
	if w.Size == latest.Size {
		if w.Hash != latest.Hash {
			return disagree("its latest checkpoint has the same size and another root")
		}
		return nil
	}
	from, b, err := baseSize(ctx, st)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInconsistent, err)
	}
	if w.Size < from {
		// The witness's records were archived and pruned since: the store begins at a
		// checkpoint past it, signed with this ledger's keys, which whoever lacks the key
		// cannot make. The archives hold the rest (audit verify --archive checks the chain).
		if _, err := b.open(l.opts.Verifiers); err != nil {
			return disagree(fmt.Sprintf("its base (the records before %d were archived) does not check out: %v", from, err))
		}
		return nil
	}
	var frontier []byte
	found := false
	err = st.Checkpoints(ctx, func(cp StoredCheckpoint) error {
		if cp.Size != w.Size {
			return nil
		}
		if c, err := parseUnverified(cp.Note); err == nil && c.Hash == w.Hash {
			frontier, found = bytes.Clone(cp.Frontier), true
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("open ledger: compare with the witness: %w", err)
	}
	if !found {
		return disagree(fmt.Sprintf("it holds no checkpoint of %d records with the witness's root (checkpoints were removed, or the log was rewritten)", w.Size))
	}
	tr, err := rangeFromFrontier(w.Size, frontier)
	if err != nil || rootOf(tr) != w.Hash {
		return disagree("its tree state at the witness's size does not match the witness's root")
	}
	err = st.Scan(ctx, w.Size, func(e Entry) error {
		if e.Seq >= latest.Size {
			return errStop
		}
		if e.Seq != tr.End() {
			return fmt.Errorf("%w: record %d is missing", ErrInconsistent, tr.End())
		}
		leaf := LeafHash(e.Data)
		return tr.Append(leaf[:], nil)
	})
	if err != nil && !errors.Is(err, errStop) {
		if errors.Is(err, ErrInconsistent) {
			return err
		}
		return fmt.Errorf("open ledger: compare with the witness: %w", err)
	}
	if tr.End() != latest.Size || rootOf(tr) != latest.Hash {
		return disagree(fmt.Sprintf("the records from %d to %d do not extend the witness's tree to the store's latest checkpoint", w.Size, latest.Size))
	}
	return nil
}

// checkUnsigned refuses to sign over records the checkpoint cadence cannot explain: records
// with no signed checkpoint at all, more records after the latest checkpoint than the writer
// ever leaves unsigned (it signs at CheckpointRecords), or records dated later than the
// checkpoint interval (plus UnsignedGrace) after the latest checkpoint was signed. A crash
// leaves a tail within these bounds; a deleted checkpoint usually does not.
func (l *Ledger) checkUnsigned(latest *Checkpoint, unsigned uint64, newest time.Time) error {
	if unsigned == 0 {
		return nil
	}
	from := uint64(0)
	if latest != nil {
		from = latest.Size
	}
	fix := fmt.Sprintf("refusing to sign them. Compare them with a copy kept elsewhere ('portcullis audit export --from-seq %d', "+
		"your SIEM, 'portcullis audit verify --trusted-checkpoint'); keep this store as evidence and start the gateway on a new one "+
		"(move the ledger aside). If the checkpoint cadence (ledger.checkpoint_records, ledger.checkpoint_interval) was lowered "+
		"since the gateway last ran, start once with the old values", from)
	if latest == nil {
		return fmt.Errorf("%w: %d records and no signed checkpoint (the ledger signs one with its first record): %s",
			ErrInconsistent, unsigned, fix)
	}
	if unsigned > uint64(l.opts.CheckpointRecords) {
		return fmt.Errorf("%w: %d records after the latest signed checkpoint (of %d records), more than the %d the ledger leaves unsigned: "+
			"checkpoints were removed or records added by someone without the ledger key; %s",
			ErrInconsistent, unsigned, latest.Size, l.opts.CheckpointRecords, fix)
	}
	signed, ok, err := latest.SignedAt()
	if err != nil {
		return fmt.Errorf("%w: latest checkpoint: %v", ErrInconsistent, err)
	}
	if ok && newest.Sub(signed) > l.opts.CheckpointInterval+UnsignedGrace {
		return fmt.Errorf("%w: records after the latest signed checkpoint (of %d records, signed %s) are dated up to %s, later than the "+
			"ledger leaves records unsigned (%v): checkpoints were removed or records added by someone without the ledger key; %s",
			ErrInconsistent, latest.Size, signed.Format(time.RFC3339), newest.Format(time.RFC3339), l.opts.CheckpointInterval+UnsignedGrace, fix)
	}
	return nil
}
