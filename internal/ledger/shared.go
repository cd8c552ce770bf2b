package ledger

// This file is the writer's side of a log shared by several ledgers (gateway replicas on one
// PostgreSQL ledger). Each replica keeps its own head — size, prev hash, Merkle frontier — but
// commits only under the store's writer lock, first extending its head over whatever the
// others appended since its own last commit. So every batch chains onto the true end of the
// log, checkpoints are signed over the whole log in commit order (their sizes never go down),
// and the result verifies like a log one writer wrote. Every replica signs with the same key.

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// catchUpScanMax: a writer further behind than this many records restarts its head from the
// latest signed checkpoint instead of reading them all while it holds the writer lock (a
// replica idle while others write a lot; checkpoints come at least every second).
var catchUpScanMax uint64 = 10_000

// openShared starts a writer on a log other writers may be appending to. Its first commit —
// the startup record — loads the head under the writer lock: from the latest signed
// checkpoint, which must verify with this ledger's keys, then every record after it, checked.
// It commits a checkpoint too, so that the next replica to start checks its keys against this
// one's even before any other checkpoint is due.
// Nothing is trimmed (a commit there is atomic, so a damaged record is not a torn write, and
// the tail may be another writer's): a damaged record refuses the start. Records after the
// latest checkpoint are explained by a recovery record (a shared log cannot tell a crashed
// replica's tail from a running one's, so it says so) and signed with the startup record —
// within the cadence's bounds only (checkUnsigned), and only on a store consistent with this
// replica's witness, checked first.
func (l *Ledger) openShared(ctx context.Context) error {
	l.tree = factory.NewEmptyRange(0)
	l.cpTime = l.now()
	cp, ok, err := l.st.LatestCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	var latest *Checkpoint
	if ok {
		c, err := l.openLatest(cp)
		if err != nil {
			return err
		}
		latest = &c
	}
	if err := l.checkBase(ctx); err != nil {
		return err
	}
	if err := l.checkWitness(ctx, l.st, latest); err != nil {
		return err
	}
	if err := l.writeSystem(&Record{Kind: KindStartup, Message: l.opts.Message}, true); err != nil {
		return fmt.Errorf("open ledger: write startup record: %w", err)
	}
	return nil
}

// commitShared is commit on a shared store: catch up, encode, commit — all under the lock.
func (l *Ledger) commitShared(bodies [][]byte, forceCheckpoint bool) (uint64, error) {
	var (
		next    head
		first   uint64
		records int
		wrote   bool
		signed  *StoredCheckpoint
		buf     []byte
		ours    []Entry
	)
	ctx, cancel := l.commitContext()
	t0 := time.Now()
	err := guarded(func() error {
		return l.shared.CommitExclusive(ctx, func(v View) ([]Entry, *StoredCheckpoint, error) {
			next = l.head
			next.tree = cloneRange(next.tree)
			if err := l.catchUp(ctx, v, &next, !l.headLoaded); err != nil {
				return nil, nil, err
			}
			bs := bodies
			if !l.headLoaded && next.size > next.cpSize {
				// The first commit (the startup record) finds records no checkpoint covers.
				rb, err := encodeBody(&Record{Kind: KindRecovery, Time: l.now(), Message: sharedRecoveryReason,
					Recovery: &Recovery{Reason: sharedRecoveryReason, FoundSize: next.size, Checkpoint: next.cpSize}})
				if err != nil {
					return nil, nil, err
				}
				bs = append([][]byte{rb}, bodies...)
			}
			first = next.size + uint64(len(bs)-len(bodies))
			entries, cp, b, err := l.encode(&next, bs, forceCheckpoint)
			records, wrote, signed, buf, ours = len(entries), len(entries) > 0 || cp != nil, cp, b, entries
			return entries, cp, err
		})
	})
	cancel()
	l.committed(time.Since(t0), records, buf)
	if err != nil {
		// Nothing to resync: the next commit catches up from this head again, over whatever
		// the store holds — this commit's records too, should they have persisted after all.
		l.fail(err)
		return 0, fmt.Errorf("%w: %w", ErrNotDurable, err)
	}
	if wrote {
		l.batches.Add(1)
	}
	l.adopt(next)
	l.opts.Recent.add(ours) // the other writers' records are read from the store
	l.headLoaded = true
	if signed != nil && l.wit != nil {
		l.wit.offer(signed.Note)
	}
	return first, nil
}

// sharedRecoveryReason explains, in the recovery record, the records a replica found after the
// latest checkpoint when it started.
const sharedRecoveryReason = "records after the latest checkpoint at start (a replica stopped without a shutdown, " +
	"or another replica's records not yet signed): checked and signed"

// catchUp extends h over the records other writers appended to v since h.size, checking that
// each is in sequence and chained to the one before (its header: see checkLink). With load (the first commit), or when
// far behind, h first restarts from the latest signed checkpoint. A checkpoint newer than h's
// becomes h's: the cadence of checkpoints counts from the latest, whoever signed it.
func (l *Ledger) catchUp(ctx context.Context, v View, h *head, load bool) error {
	size, err := v.Size(ctx)
	if err != nil {
		return err
	}
	if size < h.size {
		return fmt.Errorf("%w: the log has %d records, fewer than the %d this writer has seen (records were removed)", ErrInconsistent, size, h.size)
	}
	if size == h.size && !load {
		return nil
	}
	cp, ok, err := v.LatestCheckpoint(ctx)
	if err != nil {
		return err
	}
	var latest *Checkpoint
	if ok && (load || (cp.Size > h.size && (size-h.size > catchUpScanMax || l.prunedPast(ctx, h.size)))) {
		c, _, err := l.loadCheckpoint(ctx, v, cp, size, h)
		if err != nil {
			return err
		}
		latest = &c
	}
	if ok && cp.Size > h.cpSize {
		// The cadence counts from when the newest checkpoint was signed, not from when this
		// writer learnt of it: a replica idle for a while would otherwise leave its next records
		// unsigned for up to an interval past what verification allows.
		h.cpSize, h.cpTime = cp.Size, l.now()
		if c, err := parseUnverified(cp.Note); err == nil {
			if t, ok, err := c.SignedAt(); err == nil && ok && t.Before(h.cpTime) {
				h.cpTime = t
			}
		}
	}
	check := h.checkLink
	if load {
		check = h.checkTail // at start, each record of the tail in full, as recovery does
	}
	var newest time.Time // at start: the latest time among the unsigned records
	err = v.Scan(ctx, h.size, func(e Entry) error {
		if e.Seq >= size {
			return errStop // not under this lock: cannot happen; the size read is the end
		}
		if err := check(e); err != nil {
			return fmt.Errorf("%w: record %d, appended by another writer: %v", ErrInconsistent, e.Seq, err)
		}
		if load {
			if r, err := ParseRecord(e.Data); err == nil && r.Time.After(newest) {
				newest = r.Time
			}
		}
		return h.advance(e.Data)
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	if h.size != size {
		return fmt.Errorf("%w: record %d is missing (the log has %d)", ErrInconsistent, h.size, size)
	}
	if load {
		// What the other writers left unsigned must be within the cadence before this one
		// signs over it.
		return l.checkUnsigned(latest, h.size-h.cpSize, newest)
	}
	return nil
}

// prunedPast reports whether the store's records before size were archived and pruned past
// it, so a writer whose head is at size restarts from the latest checkpoint rather than read
// records that are gone. Asked only when another writer signed past this one's head.
func (l *Ledger) prunedPast(ctx context.Context, size uint64) bool {
	from, _, err := baseSize(ctx, l.st)
	return err == nil && from > size
}
