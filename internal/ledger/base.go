package ledger

// This file is the base of a pruned log: once the oldest records are archived (archive.go) and
// removed from the store, the live log begins at a signed checkpoint whose compact range lets
// the tree grow and be verified without the removed leaves (RFC 6962: the root of a larger
// tree needs only the roots of the perfect subtrees left of the new leaves).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// Pruner is a Store whose oldest records can be removed once they are archived. Every store in
// internal/store implements it; internal/store/storetest checks the contract.
type Pruner interface {
	// Prune removes every record with seq < size and every checkpoint of fewer than size
	// records, and keeps base (encoded by the ledger, opaque to the store) as the log's base,
	// in one atomic, durable commit. A stored checkpoint of exactly size records must exist
	// (it is kept) and size must not exceed the store's size; otherwise Prune fails and
	// changes nothing. A size not above the current base's is a no-op, so an interrupted
	// prune can be run again. Size, Scan and Trim keep their meaning: Size stays the next seq.
	Prune(ctx context.Context, size uint64, base []byte) error
	// Base returns what the latest Prune kept; ok is false when nothing was ever pruned.
	Base(ctx context.Context) (size uint64, base []byte, ok bool, err error)
}

// Base is where a pruned log begins. Everything in it is checked against the signed
// checkpoint before use; nothing in it is trusted on its own.
type Base struct {
	// Checkpoint is the signed note of the first Size records (Size = the first live seq).
	Checkpoint []byte `json:"checkpoint"`
	// Frontier is the compact range of the tree at Size (32-byte hashes, concatenated).
	Frontier []byte `json:"frontier"`
	// Last is the stored bytes of record Size-1, whose leaf hash is record Size's prev, and
	// LastProof its RFC 6962 inclusion proof in the tree the checkpoint signs.
	Last      []byte   `json:"last"`
	LastProof [][]byte `json:"last_proof"`
}

// ErrPruneNoCheckpoint: Prune was asked to cut the log where no stored checkpoint is, or past
// its end.
var ErrPruneNoCheckpoint = errors.New("ledger store: prune needs a stored checkpoint of that size")

// ErrBase: a base (of the live log or of an archive) does not check out against its signed
// checkpoint.
var ErrBase = errors.New("ledger base")

// openedBase is a base whose parts were checked against its signed checkpoint.
type openedBase struct {
	c        Checkpoint
	tree     *compact.Range
	lastLeaf [sha256.Size]byte
}

// open checks b with the verifiers: the checkpoint's signature, the frontier against its
// root, and the last record's header and inclusion proof.
func (b Base) open(vs note.Verifiers) (openedBase, error) {
	var o openedBase
	c, _, err := OpenCheckpoint(b.Checkpoint, vs)
	if err != nil {
		return o, fmt.Errorf("%w: %v", ErrBase, err)
	}
	if c.Size == 0 {
		return o, fmt.Errorf("%w: a base of 0 records", ErrBase)
	}
	tr, err := rangeFromFrontier(c.Size, b.Frontier)
	if err != nil {
		return o, fmt.Errorf("%w: compact range: %v", ErrBase, err)
	}
	if rootOf(tr) != c.Hash {
		return o, fmt.Errorf("%w: the compact range of %d records does not hash to the signed root (it was changed)", ErrBase, c.Size)
	}
	h, err := ParseHeader(b.Last)
	if err != nil || h.Seq != c.Size-1 {
		return o, fmt.Errorf("%w: the last record before the base is not record %d", ErrBase, c.Size-1)
	}
	leaf := LeafHash(b.Last)
	if err := proof.VerifyInclusion(hasher, c.Size-1, c.Size, leaf[:], b.LastProof, c.Hash[:]); err != nil {
		return o, fmt.Errorf("%w: record %d is not the one the signed root covers: %v", ErrBase, c.Size-1, err)
	}
	return openedBase{c: c, tree: tr, lastLeaf: leaf}, nil
}

// Size reads the size from the base's checkpoint without checking it.
func (b Base) Size() (uint64, error) {
	c, err := parseUnverified(b.Checkpoint)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBase, err)
	}
	return c.Size, nil
}

// LoadBase returns the base of st's log: nil when st cannot prune or never pruned.
func LoadBase(ctx context.Context, st Store) (*Base, error) {
	p, ok := st.(Pruner)
	if !ok {
		return nil, nil
	}
	size, raw, ok, err := p.Base(ctx)
	if err != nil || !ok {
		return nil, err
	}
	var b Base
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("%w: stored base: %v", ErrBase, err)
	}
	if s, err := b.Size(); err != nil {
		return nil, err
	} else if s != size {
		return nil, fmt.Errorf("%w: stored as the base of %d records but its checkpoint signs %d", ErrBase, size, s)
	}
	return &b, nil
}

// baseSize is the first seq st holds: its base's size, 0 when nothing was pruned.
func baseSize(ctx context.Context, st Store) (uint64, *Base, error) {
	b, err := LoadBase(ctx, st)
	if err != nil || b == nil {
		return 0, nil, err
	}
	s, err := b.Size()
	return s, b, err
}

// lastBefore returns the stored bytes of record size-1 (size > 0): from the store, or from
// the base when the store pruned it — checked with vs against the base's signed root, since
// the next record's prev is taken from it.
func lastBefore(ctx context.Context, st Store, v View, size uint64, vs note.Verifiers) ([]byte, error) {
	var last []byte
	err := v.Scan(ctx, size-1, func(e Entry) error {
		if e.Seq == size-1 {
			last = bytes.Clone(e.Data)
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if last != nil {
		return last, nil
	}
	b, err := LoadBase(ctx, st)
	if err != nil {
		return nil, err
	}
	if b != nil {
		if s, err := b.Size(); err == nil && s == size {
			if _, err := b.open(vs); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInconsistent, err)
			}
			return bytes.Clone(b.Last), nil
		}
	}
	return nil, fmt.Errorf("%w: record %d missing", ErrInconsistent, size-1)
}

// baseAt builds the base of st's log at size, which must be the size of a stored checkpoint,
// from the tree state the caller computed (tree of the first size records, with the nodes of
// record size-1's inclusion proof collected in c) and the record itself.
func baseAt(note []byte, tree *compact.Range, c *nodeCollector, last []byte) (Base, error) {
	size := tree.End()
	nodes, err := proof.Inclusion(size-1, size)
	if err != nil {
		return Base{}, err
	}
	hs, err := c.proof(nodes)
	if err != nil {
		return Base{}, err
	}
	return Base{Checkpoint: bytes.Clone(note), Frontier: frontierBytes(tree), Last: bytes.Clone(last), LastProof: hs}, nil
}

// checkBase checks a pruned log's base at start, though only verification and a start right
// at the base read it: a store whose base was changed is not written to.
func (l *Ledger) checkBase(ctx context.Context) error {
	b, err := LoadBase(ctx, l.st)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInconsistent, err)
	}
	if b != nil {
		if _, err := b.open(l.opts.Verifiers); err != nil {
			return fmt.Errorf("%w: the log's base (the records before it were archived): %v", ErrInconsistent, err)
		}
	}
	return nil
}

// ArchiveLocker is a Pruner whose archiving is one archiver's at a time: a gateway's retention
// and `portcullis audit archive`, or the retention of two replicas of one ledger, would otherwise
// each write an archive of the same records into its own directory and race on the prune.
type ArchiveLocker interface {
	// TryLockArchive takes the ledger's archive lock without waiting, and returns its release.
	// When another archiver holds it, the error is an *ArchiveBusyError (errors.Is
	// ErrArchiveBusy), naming the holder when the store can tell.
	TryLockArchive(ctx context.Context) (unlock func(), err error)
}

// ErrArchiveBusy: another archiver is archiving and pruning this ledger now.
var ErrArchiveBusy = errors.New("another archiver holds the ledger's archive lock")

// ArchiveBusyError is ErrArchiveBusy with the holder, as the store describes it ("" unknown).
type ArchiveBusyError struct{ Holder string }

func (e *ArchiveBusyError) Error() string {
	if e.Holder == "" {
		return ErrArchiveBusy.Error()
	}
	return ErrArchiveBusy.Error() + " (" + e.Holder + ")"
}

// Is makes errors.Is(err, ErrArchiveBusy) true.
func (e *ArchiveBusyError) Is(target error) bool { return target == ErrArchiveBusy }

// lockArchive takes st's archive lock; a store that can prune but has none cannot be archived
// safely, so it is refused.
func lockArchive(ctx context.Context, st Store) (func(), error) {
	l, ok := st.(ArchiveLocker)
	if !ok {
		return nil, fmt.Errorf("archive: the %T store has no archive lock", st)
	}
	return l.TryLockArchive(ctx)
}
