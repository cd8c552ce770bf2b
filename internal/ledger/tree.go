package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

var (
	hasher  = rfc6962.DefaultHasher
	factory = &compact.RangeFactory{Hash: hasher.HashChildren}
)

// rootOf returns the root hash of a compact range that starts at 0.
func rootOf(r *compact.Range) [sha256.Size]byte {
	var out [sha256.Size]byte
	if r.End() == 0 {
		copy(out[:], hasher.EmptyRoot())
		return out
	}
	h, err := r.GetRootHash(nil)
	if err != nil {
		panic(fmt.Sprintf("ledger: root of compact range: %v", err)) // only for ranges not starting at 0
	}
	copy(out[:], h)
	return out
}

func cloneRange(r *compact.Range) *compact.Range {
	hs := r.Hashes()
	c := make([][]byte, len(hs))
	copy(c, hs) // hashes are never modified in place, only replaced
	nr, err := factory.NewRange(r.Begin(), r.End(), c)
	if err != nil {
		panic(fmt.Sprintf("ledger: clone compact range: %v", err))
	}
	return nr
}

func frontierBytes(r *compact.Range) []byte {
	var b []byte
	for _, h := range r.Hashes() {
		b = append(b, h...)
	}
	return b
}

func rangeFromFrontier(size uint64, b []byte) (*compact.Range, error) {
	if len(b)%sha256.Size != 0 {
		return nil, fmt.Errorf("frontier of %d bytes is not a multiple of %d", len(b), sha256.Size)
	}
	var hs [][]byte
	for i := 0; i < len(b); i += sha256.Size {
		hs = append(hs, append([]byte(nil), b[i:i+sha256.Size]...))
	}
	return factory.NewRange(0, size, hs)
}

// nodeCollector remembers the hashes of wanted tree nodes while leaves are appended.
type nodeCollector struct {
	want map[compact.NodeID][]byte
}

func newNodeCollector() *nodeCollector {
	return &nodeCollector{want: map[compact.NodeID][]byte{}}
}

func (c *nodeCollector) add(ids []compact.NodeID) {
	for _, id := range ids {
		c.want[id] = nil
	}
}

func (c *nodeCollector) visit(id compact.NodeID, h []byte) {
	if v, ok := c.want[id]; ok && v == nil {
		c.want[id] = append([]byte(nil), h...)
	}
}

func (c *nodeCollector) proof(n proof.Nodes) ([][]byte, error) {
	hs := make([][]byte, len(n.IDs))
	for i, id := range n.IDs {
		h := c.want[id]
		if h == nil {
			return nil, fmt.Errorf("proof node %+v was not computed", id)
		}
		hs[i] = h
	}
	return n.Rehash(hs, hasher.HashChildren)
}

// ErrOutOfRange: a proof was asked for a record or size the log does not have.
var ErrOutOfRange = errors.New("out of range")

// InclusionProof is the RFC 6962 audit path of record Index in the tree of Size records.
type InclusionProof struct {
	Index    uint64   `json:"index"`
	Size     uint64   `json:"size"`
	LeafHash []byte   `json:"leaf_hash"`
	Root     []byte   `json:"root"`
	Hashes   [][]byte `json:"hashes"`
}

// ConsistencyProof proves that the tree of Old records is a prefix of the tree of New records.
type ConsistencyProof struct {
	Old     uint64   `json:"old"`
	New     uint64   `json:"new"`
	OldRoot []byte   `json:"old_root"`
	NewRoot []byte   `json:"new_root"`
	Hashes  [][]byte `json:"hashes"`
}

// Verify checks the proof against its own root (compare Root with a signed checkpoint).
func (p InclusionProof) Verify() error {
	return proof.VerifyInclusion(hasher, p.Index, p.Size, p.LeafHash, p.Hashes, p.Root)
}

// Verify checks the proof against its own roots (compare them with signed checkpoints).
func (p ConsistencyProof) Verify() error {
	return proof.VerifyConsistency(hasher, p.Old, p.New, p.Hashes, p.OldRoot, p.NewRoot)
}

// seed gives c the nodes of r, a compact range the caller starts from (a pruned log's base):
// the proofs of the records after it need some of them, and no append computes them again.
func (c *nodeCollector) seed(r *compact.Range) {
	ids := compact.RangeNodes(r.Begin(), r.End(), nil)
	for i, h := range r.Hashes() {
		c.visit(ids[i], h)
	}
}

// ErrArchived: a proof or a read needs records that were archived and pruned from the store;
// the archive file holding them answers it.
var ErrArchived = errors.New("archived")

// startTree returns the tree st's log starts from: empty, or the compact range of its base
// (checked against the base checkpoint's root; signatures are the verifier's business).
func startTree(ctx context.Context, st Store) (*compact.Range, error) {
	from, b, err := baseSize(ctx, st)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return factory.NewEmptyRange(0), nil
	}
	c, err := parseUnverified(b.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBase, err)
	}
	r, err := rangeFromFrontier(from, b.Frontier)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBase, err)
	}
	if rootOf(r) != c.Hash {
		return nil, fmt.Errorf("%w: the stored compact range does not hash to the base checkpoint's root", ErrBase)
	}
	return r, nil
}

// scanTree reads the first size records of st (from its base, if it was pruned), appending
// their leaf hashes to the tree and calling each (if not nil) with every leaf. It returns the
// tree.
func scanTree(ctx context.Context, st Store, size uint64, c *nodeCollector, each func(seq uint64, data []byte, leaf []byte) error) (*compact.Range, error) {
	r, err := startTree(ctx, st)
	if err != nil {
		return nil, err
	}
	var visit compact.VisitFn
	if c != nil {
		c.seed(r)
		visit = c.visit
	}
	if size < r.End() {
		return nil, fmt.Errorf("%w: records before %d were archived", ErrArchived, r.End())
	}
	errDone := errors.New("done")
	err = st.Scan(ctx, r.End(), func(e Entry) error {
		if r.End() == size {
			return errDone
		}
		if e.Seq != r.End() {
			return fmt.Errorf("record %d missing (store has %d next)", r.End(), e.Seq)
		}
		leaf := LeafHash(e.Data)
		if each != nil {
			if err := each(e.Seq, e.Data, leaf[:]); err != nil {
				return err
			}
		}
		return r.Append(leaf[:], visit)
	})
	if err != nil && !errors.Is(err, errDone) {
		return nil, err
	}
	if r.End() != size {
		return nil, fmt.Errorf("%w: the log has %d records, want %d", ErrOutOfRange, r.End(), size)
	}
	return r, nil
}

// ProveInclusion builds the inclusion proof of record index in the tree of size records.
func ProveInclusion(ctx context.Context, st Store, index, size uint64) (InclusionProof, error) {
	if index >= size {
		return InclusionProof{}, fmt.Errorf("prove inclusion of %d in %d: %w", index, size, ErrOutOfRange)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove inclusion: %w", err)
	}
	if from, _, err := baseSize(ctx, st); err != nil {
		return InclusionProof{}, fmt.Errorf("prove inclusion: %w", err)
	} else if index < from {
		return InclusionProof{}, fmt.Errorf("prove inclusion of %d: %w: the live log begins at %d; the archive holding it proves it", index, ErrArchived, from)
	}
	c := newNodeCollector()
	c.add(nodes.IDs)
	var leaf []byte
	r, err := scanTree(ctx, st, size, c, func(seq uint64, _ []byte, l []byte) error {
		if seq == index {
			leaf = append([]byte(nil), l...)
		}
		return nil
	})
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove inclusion: %w", err)
	}
	hs, err := c.proof(nodes)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove inclusion: %w", err)
	}
	root := rootOf(r)
	return InclusionProof{Index: index, Size: size, LeafHash: leaf, Root: root[:], Hashes: hs}, nil
}

// ProveConsistency builds the consistency proof between the trees of old and new records.
func ProveConsistency(ctx context.Context, st Store, old, new uint64) (ConsistencyProof, error) {
	if old > new {
		return ConsistencyProof{}, fmt.Errorf("prove consistency %d→%d: %w", old, new, ErrOutOfRange)
	}
	nodes, err := proof.Consistency(old, new)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove consistency: %w", err)
	}
	if from, _, err := baseSize(ctx, st); err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove consistency: %w", err)
	} else if old < from {
		return ConsistencyProof{}, fmt.Errorf("prove consistency from %d: %w: the live log begins at %d", old, ErrArchived, from)
	}
	c := newNodeCollector()
	c.add(nodes.IDs)
	oldIDs := compact.RangeNodes(0, old, nil) // the perfect subtrees whose hashes give the old root
	c.add(oldIDs)
	r, err := scanTree(ctx, st, new, c, nil)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove consistency: %w", err)
	}
	oldHashes := make([][]byte, len(oldIDs))
	for i, id := range oldIDs {
		oldHashes[i] = c.want[id]
	}
	oldRange, err := factory.NewRange(0, old, oldHashes)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove consistency: %w", err)
	}
	oldRoot := rootOf(oldRange)
	hs, err := c.proof(nodes)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove consistency: %w", err)
	}
	newRoot := rootOf(r)
	return ConsistencyProof{Old: old, New: new, OldRoot: oldRoot[:], NewRoot: newRoot[:], Hashes: hs}, nil
}
