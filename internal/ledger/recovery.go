package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/compact"
)

// head is the end of the log as the writer knows it: what its next batch chains onto.
type head struct {
	size     uint64
	lastLeaf [sha256.Size]byte // leaf hash of record size-1: the next record's prev
	tree     *compact.Range    // the Merkle tree of the first size records
	cpSize   uint64            // the latest checkpoint's size,
	cpTime   time.Time         // and when it was signed (by another writer: the time it carries)
}

// advance appends a record, already checked, to the head.
func (h *head) advance(data []byte) error {
	leaf := LeafHash(data) // the range keeps the slice it is given: each leaf its own array
	if err := h.tree.Append(leaf[:], nil); err != nil {
		return err
	}
	h.lastLeaf = leaf
	h.size++
	return nil
}

// loadCheckpoint sets h to the log at its latest signed checkpoint cp, which must verify with
// this ledger's keys and whose stored tree state must match its signed root; size is the
// log's size. It returns the checkpoint and the last record it covers (nil for an empty one).
func (l *Ledger) loadCheckpoint(ctx context.Context, v View, cp StoredCheckpoint, size uint64, h *head) (Checkpoint, []byte, error) {
	c, err := l.openLatest(cp)
	if err != nil {
		return c, nil, err
	}
	if c.Size > size {
		return c, nil, fmt.Errorf("%w: %d records stored but the latest signed checkpoint covers %d (records were removed)", ErrInconsistent, size, c.Size)
	}
	tr, err := rangeFromFrontier(c.Size, cp.Frontier)
	if err != nil {
		return c, nil, fmt.Errorf("%w: latest checkpoint's tree state: %v", ErrInconsistent, err)
	}
	if rootOf(tr) != c.Hash {
		return c, nil, fmt.Errorf("%w: latest checkpoint's tree state does not match its signed root", ErrInconsistent)
	}
	h.tree, h.size, h.cpSize = tr, c.Size, c.Size
	// The link into the tail: the leaf hash of the last checkpointed record.
	var last []byte
	if c.Size > 0 {
		b, err := lastBefore(ctx, l.st, v, c.Size, l.opts.Verifiers)
		if err != nil {
			if errors.Is(err, ErrInconsistent) {
				return c, nil, err
			}
			return c, nil, fmt.Errorf("read the last checkpointed record: %w", err)
		}
		h.lastLeaf, last = LeafHash(b), b
	}
	return c, last, nil
}

// openLatest checks the latest stored checkpoint's signature with this ledger's keys.
func (l *Ledger) openLatest(cp StoredCheckpoint) (Checkpoint, error) {
	c, _, err := OpenCheckpoint(cp.Note, l.opts.Verifiers)
	if err != nil {
		if l.shared != nil {
			return c, fmt.Errorf("%w: latest checkpoint: %v (replicas sharing a ledger must share its keys: %s, %s and %s)",
				ErrInconsistent, err, SigningKeyFile, PublicKeysFile, HashKeyFile)
		}
		return c, fmt.Errorf("%w: latest checkpoint: %v", ErrInconsistent, err)
	}
	if c.Size != cp.Size {
		return c, fmt.Errorf("%w: latest checkpoint is stored as size %d but signs size %d", ErrInconsistent, cp.Size, c.Size)
	}
	if _, _, err := c.SignedAt(); err != nil {
		return c, fmt.Errorf("%w: latest checkpoint: %v", ErrInconsistent, err)
	}
	return c, nil
}

// recover loads the tree state and checks the tail after the latest checkpoint. It returns the
// recovery details when the last stop was not clean.
func (l *Ledger) recover(ctx context.Context) (*Recovery, error) {
	size, err := l.st.Size(ctx)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	l.tree = factory.NewEmptyRange(0)
	cp, ok, err := l.st.LatestCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	if err := l.checkBase(ctx); err != nil {
		return nil, err
	}
	var lastCovered []byte
	var latest *Checkpoint
	if ok {
		c, lc, err := l.loadCheckpoint(ctx, l.st, cp, size, &l.head)
		if err != nil {
			return nil, err
		}
		latest, lastCovered = &c, lc
	}
	if err := l.checkWitness(ctx, l.st, latest); err != nil {
		return nil, err
	}
	var last *Record
	var newest time.Time // the latest time among the unsigned records
	if lastCovered != nil {
		// A clean stop ends with a checkpointed shutdown record and no tail.
		last, _ = ParseRecord(lastCovered)
	}
	var torn error
	tornAt := uint64(0)
	err = l.st.Scan(ctx, l.size, func(e Entry) error {
		if torn != nil {
			return fmt.Errorf("%w: record %d is damaged (%v) and is not the last", ErrInconsistent, tornAt, torn)
		}
		if e.Seq != l.size {
			return fmt.Errorf("%w: record %d is missing (the store has %d next)", ErrInconsistent, l.size, e.Seq)
		}
		bad := l.checkTail(e)
		if bad != nil {
			torn, tornAt = bad, e.Seq
			return nil
		}
		r, _ := ParseRecord(e.Data)
		last = r
		if r.Time.After(newest) {
			newest = r.Time
		}
		return l.advance(e.Data)
	})
	if err != nil {
		if errors.Is(err, ErrInconsistent) {
			return nil, err
		}
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	if torn != nil && tornAt != size-1 {
		return nil, fmt.Errorf("%w: record %d is damaged (%v) and is not the last", ErrInconsistent, tornAt, torn)
	}
	if err := l.checkUnsigned(latest, l.size-l.cpSize, newest); err != nil {
		return nil, err
	}
	l.sizeA.Store(l.size)
	l.cpSizeA.Store(l.cpSize)
	l.cpTime = l.now()
	if torn != nil {
		// A torn last record was never acknowledged: its batch's commit did not complete.
		if err := l.st.Trim(ctx, tornAt); err != nil {
			return nil, fmt.Errorf("%w: trim torn record %d: %v", ErrInconsistent, tornAt, err)
		}
		return &Recovery{Reason: fmt.Sprintf("torn last record trimmed: %v", torn), FoundSize: size,
			Checkpoint: l.cpSize, TrimmedFrom: tornAt, Trimmed: 1}, nil
	}
	if size == 0 {
		return nil, nil
	}
	if last == nil || last.Kind != KindShutdown || l.cpSize != size {
		return &Recovery{Reason: "the previous run did not shut down cleanly", FoundSize: size, Checkpoint: l.cpSize}, nil
	}
	return nil, nil
}

var errStop = errors.New("stop")

// checkTail checks the record after the head (one not covered by a checkpoint it has
// verified): canonical, linked, in sequence.
func (h *head) checkTail(e Entry) error {
	if e.Seq != h.size {
		return fmt.Errorf("stored at seq %d, want %d", e.Seq, h.size)
	}
	if _, err := ParseRecord(e.Data); err != nil {
		return err
	}
	return h.checkLink(e)
}

// checkLink checks that e is the record after the head — stored at and saying seq h.size, its
// prev the leaf hash of the record before — reading only its header. A shared writer checks
// every record the others appended this way before chaining onto them; decoding each whole
// would cost more than the writer's own batch. Verification reads every record in full.
func (h *head) checkLink(e Entry) error {
	if e.Seq != h.size {
		return fmt.Errorf("stored at seq %d, want %d", e.Seq, h.size)
	}
	hd, err := ParseHeader(e.Data)
	if err != nil {
		return err
	}
	if hd.Seq != h.size {
		return fmt.Errorf("says seq %d", hd.Seq)
	}
	if h.size == 0 {
		if hd.HasPrev {
			return errors.New("record 0 has a prev")
		}
	} else if !hd.HasPrev || hd.Prev != h.lastLeaf {
		return errors.New("prev does not match the previous record's hash")
	}
	return nil
}

// resync re-reads the store after a failed commit, whose effect is unknown (a failed sync may
// or may not have persisted). The writer continues only from a state it can prove.
func (l *Ledger) resync() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	size, err := l.st.Size(ctx)
	if err != nil {
		return fmt.Errorf("resync after a failed commit: %w", err)
	}
	cp, ok, err := l.st.LatestCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("resync after a failed commit: %w", err)
	}
	if ok && cp.Size > l.cpSize {
		// The failed commit did persist its checkpoint (and so its records).
		tr, err := rangeFromFrontier(cp.Size, cp.Frontier)
		if err != nil {
			return fmt.Errorf("resync after a failed commit: %w", err)
		}
		l.tree, l.cpSize = tr, cp.Size
		l.cpSizeA.Store(cp.Size)
	}
	if size == l.size && l.tree.End() == size {
		l.needResync = false
		return nil
	}
	// Records of the failed commit persisted after all: extend the tree over them.
	if size < l.size || size < l.tree.End() {
		return fmt.Errorf("%w: the store shrank from %d to %d records", ErrInconsistent, l.size, size)
	}
	from := l.tree.End()
	if from > 0 {
		b, err := lastBefore(ctx, l.st, l.st, from, l.opts.Verifiers)
		if err != nil {
			return fmt.Errorf("resync after a failed commit: %w", err)
		}
		l.lastLeaf = LeafHash(b)
	}
	l.size = from
	err = l.st.Scan(ctx, from, func(e Entry) error {
		if err := l.checkTail(e); err != nil {
			return fmt.Errorf("%w: record %d: %v", ErrInconsistent, e.Seq, err)
		}
		return l.advance(e.Data)
	})
	if err != nil {
		return fmt.Errorf("resync after a failed commit: %w", err)
	}
	l.sizeA.Store(l.size)
	l.needResync = false
	return nil
}
