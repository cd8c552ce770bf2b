// Package auditindex keeps an index of the audit ledger for the console's search, beside the
// ledger and never inside its append path: an Indexer reads records the store has already
// committed (as export's Tailer does) and writes the index in its own batched transactions,
// with a watermark saying how far it got. A search asks the index for the records below the
// watermark and scans only the records above it.
//
// The index is a set of posting lists: for each field (agent, tool, decision, ...) and term
// (its value), and each block of BlockSize consecutive records, the offsets of the records of
// that block that hold the term, in one small blob. A block also keeps the earliest and latest
// time of its records, for time ranges. The index only narrows: every record it names is read
// and matched in full by the caller, so a stale posting (a pruned record) costs a read, never
// a wrong answer.
package auditindex

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// BlockShift sets the block size: records seq>>BlockShift share a block.
const BlockShift = 12

// BlockSize is the number of records of a block.
const BlockSize = 1 << BlockShift

// Field is an indexed field. The values are stored: never renumber them.
type Field uint8

// The indexed fields: the console's search filters, as ledger.Record holds them.
const (
	FieldKind     Field = 1 // Record.Event()
	FieldAgent    Field = 2
	FieldUser     Field = 3
	FieldTool     Field = 4
	FieldDecision Field = 5 // lower case: decisions are matched regardless of case
	FieldRule     Field = 6
	FieldSession  Field = 7
	// FieldDecisionID (8) is not indexed: a term per record, it was most of the rows an
	// indexer wrote — and of its CPU — for a filter the explorer reaches from a record whose
	// decision's other records lie close by (the record page looks around it).
)

// Term is one field's value.
type Term struct {
	Field Field
	Value string
}

// maxStoredValue bounds a term's value as the index holds it: PostgreSQL's key entries must fit
// a third of a page, and its TEXT holds no NUL.
const maxStoredValue = 512

// StoredValue is v as the index holds it: v itself, or its digest when v is longer than the
// index can key on or holds a NUL. Writers and searches both pass values through it; a digest
// that meets another value only widens the candidates, which are matched against the records.
func StoredValue(v string) string {
	if len(v) <= maxStoredValue && strings.IndexByte(v, 0) < 0 {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// State is the index's watermark: every record below Next is indexed (or was skipped).
type State struct {
	Next uint64
	// Last is the leaf hash of record Next-1 as it was indexed: an indexer that finds another
	// record there (a torn tail trimmed and written again) rebuilds the index.
	Last []byte
	// Skipped counts the records that could not be decoded, and so are not in the index.
	Skipped uint64
	// Generation counts the index's resets. What a writer learnt of the stored rows (which
	// terms a block holds) is true of one generation only: another replica may have emptied and
	// rebuilt the index since, up to the same watermark, from other records.
	Generation uint64
}

// Posting is one term's records in one block.
type Posting struct {
	Block uint64
	Seqs  []byte // Encode's form
}

// Span is a block's time bounds (Unix nanoseconds).
type Span struct {
	Block    uint64
	Min, Max int64
}

// Key names one posting row.
type Key struct {
	Term
	Block uint64
}

// Batch is what one indexing transaction writes: postings to merge into the stored ones (a
// union), block time bounds to widen, and the new state.
type Batch struct {
	Postings map[Key][]uint16 // offsets within the block, ascending
	Spans    map[uint64]Span
	State    State
	// Stored, when not nil, names every term the store holds in the watermark's block: the
	// indexer wrote them all itself, so the store need not look up the others.
	Stored map[Term]bool
}

// ErrConflict: the stored watermark or generation is not where the writer started (another
// replica's indexer wrote the batch first, or rebuilt the index). Nothing was written.
var ErrConflict = errors.New("audit index: the watermark moved")

// ErrDamaged: a stored posting row cannot be read (Decode). The index can be rebuilt from the
// ledger; an Indexer that meets it on a write resets the index and does so.
var ErrDamaged = errors.New("audit index: malformed posting")

// Reader is the index as a search reads it.
type Reader interface {
	// State returns the watermark.
	State(ctx context.Context) (State, error)
	// Postings returns up to limit rows of t in blocks <= maxBlock, highest block first.
	Postings(ctx context.Context, t Term, maxBlock uint64, limit int) ([]Posting, error)
	// Spans returns up to limit block spans of blocks <= maxBlock, highest first.
	Spans(ctx context.Context, maxBlock uint64, limit int) ([]Span, error)
	// Records calls fn with the stored records among seqs (those pruned are left out), in the
	// order of seqs.
	Records(ctx context.Context, seqs []uint64, fn func(ledger.Entry) error) error
}

// Store keeps the index: SQLite beside the ledger's file, or tables beside the ledger's on
// PostgreSQL (internal/store/...).
type Store interface {
	Reader
	// Write commits b in one transaction if the stored watermark is still from and the stored
	// generation still b.State.Generation; otherwise it fails with ErrConflict and writes
	// nothing. A stored posting it cannot merge with fails it with an error wrapping ErrDamaged. Writers of the same range are serialised (one
	// replica's indexer at a time), and a batch merges by union, so writing one twice changes
	// nothing.
	Write(ctx context.Context, from uint64, b *Batch) error
	// Reset empties the index (the watermark back to 0) and moves the generation on.
	Reset(ctx context.Context) error
	// Drop removes the rows of blocks below block (records pruned by retention).
	Drop(ctx context.Context, block uint64) error
}

// nanos is a time as a span stores it: Unix nanoseconds, clamped where they overflow.
func nanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var minTime, maxTime = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

// InOrder calls fn with the records of got in the order of seqs, leaving out those it lacks:
// Reader.Records for a store that reads them in one query, in any order.
func InOrder(seqs []uint64, got map[uint64][]byte, fn func(ledger.Entry) error) error {
	for _, s := range seqs {
		if d, ok := got[s]; ok {
			if err := fn(ledger.Entry{Seq: s, Data: d}); err != nil {
				return err
			}
		}
	}
	return nil
}
