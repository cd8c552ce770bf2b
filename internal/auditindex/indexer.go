package auditindex

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	segjson "github.com/segmentio/encoding/json"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// Defaults of Options.
const (
	DefaultBatch    = BlockSize
	DefaultInterval = 250 * time.Millisecond
)

// Options configure an Indexer.
type Options struct {
	// Ledger is the ledger's store, read only (a ledger.Pruner too when retention prunes it).
	Ledger ledger.View
	Index  Store
	// Batch bounds the records one transaction indexes (default and most: BlockSize).
	Batch int
	// Interval is how long the indexer waits when it has caught up (default 250ms): what a
	// search scans beyond the watermark is about what the ledger takes in that time.
	Interval time.Duration
	Logger   *slog.Logger
}

// Indexer keeps the index up to the ledger's committed records.
type Indexer struct {
	o   Options
	log *slog.Logger
	// dropped is the block below which this indexer has removed pruned rows.
	dropped uint64
	// wrote and gen are the watermark and generation after this indexer's last batch, and
	// stored the terms it has written of that watermark's block: while the watermark is still
	// there in the same generation, the next batch's store knows which of its rows exist
	// without looking each up.
	wrote, gen uint64
	stored     map[Term]bool
	// behind is set by a step that left records it knew of unindexed (its batch ended at a
	// block's end or the batch limit, or another replica moved the watermark): Run goes on at
	// once rather than wait an interval.
	behind bool

	indexed, skipped, failures, rebuilds atomic.Uint64
	watermark                            atomic.Uint64
}

// New returns an indexer; Run runs it.
func New(o Options) *Indexer {
	if o.Batch <= 0 || o.Batch > BlockSize {
		o.Batch = DefaultBatch // a batch never spans two blocks
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Indexer{o: o, log: o.Logger}
}

// Stats are the indexer's counters since it started, and its watermark. Rebuilds counts the
// times it emptied the index to build it again (a torn tail, a record replaced, a damaged row).
type Stats struct {
	Indexed, Skipped, Failures, Rebuilds, Watermark uint64
}

// Stats returns the counters, each loaded on its own without a lock: not one instant's values,
// as a batch that ends during the call may be in some of them only.
func (ix *Indexer) Stats() Stats {
	return Stats{Indexed: ix.indexed.Load(), Skipped: ix.skipped.Load(), Failures: ix.failures.Load(),
		Rebuilds: ix.rebuilds.Load(), Watermark: ix.watermark.Load()}
}

// Run indexes until ctx ends: batch after batch while the records it knows of wait, then,
// once it has caught up, every Interval. A
// failed batch is logged, counted and tried again (with backoff); it never touches the ledger.
func (ix *Indexer) Run(ctx context.Context) {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		_, err := ix.Step(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			ix.failures.Add(1)
			ix.log.LogAttrs(ctx, slog.LevelWarn, "audit index: batch failed", slog.Any("error", err))
			wait = min(max(2*wait, ix.o.Interval), 30*time.Second)
		case !ix.behind:
			// Caught up (nothing read, or all it knew of): wait an interval, so that under steady load
			// each batch — a transaction on the index — takes what an interval brought rather
			// than the few records committed since the last one.
			wait = ix.o.Interval
		default:
			wait = 0
		}
	}
}

// errEnough ends a read of the ledger once a batch is full.
var errEnough = errors.New("enough")

// Step indexes one batch of the records after the watermark and returns how many it read.
func (ix *Indexer) Step(ctx context.Context) (int, error) { return ix.step(ctx, true) }

// step is Step; mayReset is false for the batch right after a reset, which never resets again
// (an empty index holds nothing damaged: what goes wrong then is reported, not looped on).
func (ix *Indexer) step(ctx context.Context, mayReset bool) (int, error) {
	ix.behind = false
	st, err := ix.o.Index.State(ctx)
	if err != nil {
		return 0, err
	}
	base, err := ix.drop(ctx)
	if err != nil {
		return 0, err
	}
	size, err := ix.o.Ledger.Size(ctx)
	if err != nil {
		return 0, err
	}
	if size < st.Next {
		// The log is shorter than what was indexed: a torn tail was trimmed.
		return ix.reset(ctx, mayReset, fmt.Sprintf("the ledger has %d records, the index covers %d", size, st.Next))
	}
	// Records retention pruned before they were indexed are not indexed at all.
	start := max(st.Next, base)
	if size <= start {
		ix.watermark.Store(st.Next)
		return 0, nil
	}
	b := Batch{Postings: map[Key][]uint16{}, Spans: map[uint64]Span{}, State: st}
	// The batch ends at a block's end, so a block's rows are rewritten by as few batches as
	// possible.
	end := min(size, start+uint64(ix.o.Batch))
	if e := (start/BlockSize + 1) * BlockSize; start%BlockSize != 0 && e < end {
		end = e
	}
	// The last record indexed is read again, to check it is still there; a pruned one cannot
	// have changed.
	from, checked := start, st.Next == 0 || base >= st.Next
	if !checked {
		from = st.Next - 1
	}
	n := 0
	var r fields
	err = ix.o.Ledger.Scan(ctx, from, func(e ledger.Entry) error {
		if e.Seq < st.Next {
			h := ledger.LeafHash(e.Data)
			if st.Last != nil && !bytes.Equal(h[:], st.Last) {
				return errReplaced
			}
			checked = true
			return nil
		}
		if e.Seq >= end {
			return errEnough
		}
		// A record below the watermark was pruned: it can no longer be trimmed.
		checked = true
		n++
		b.State.Next = e.Seq + 1
		h := ledger.LeafHash(e.Data)
		b.State.Last = h[:]
		r = fields{}
		if err := segjson.Unmarshal(e.Data, &r); err != nil {
			b.State.Skipped++
			ix.skipped.Add(1)
			ix.log.LogAttrs(ctx, slog.LevelWarn, "audit index: a record cannot be decoded; it is left out of the index", slog.Uint64("seq", e.Seq), slog.Any("error", err))
			return nil
		}
		b.add(e.Seq, &r)
		return nil
	})
	if errors.Is(err, errReplaced) {
		return ix.reset(ctx, mayReset, fmt.Sprintf("record %d is not the one indexed", st.Next-1))
	}
	if err != nil && !errors.Is(err, errEnough) {
		return 0, err
	}
	if !checked {
		return 0, fmt.Errorf("audit index: record %d cannot be read", st.Next-1)
	}
	if n == 0 {
		return 0, nil
	}
	if ix.stored != nil && ix.wrote == st.Next && ix.gen == st.Generation && st.Next%BlockSize != 0 {
		b.Stored = ix.stored
	}
	err = ix.o.Index.Write(ctx, st.Next, &b)
	if err != nil {
		ix.stored = nil
	}
	switch {
	case errors.Is(err, ErrConflict):
		ix.behind = true
		return n, nil // another replica indexed it: read the watermark again
	case errors.Is(err, ErrDamaged):
		// Every batch into that block would fail on the row: the index is built again.
		return ix.reset(ctx, mayReset, err.Error())
	case err != nil:
		return 0, err
	}
	ix.remember(start, &b)
	ix.behind = b.State.Next < size
	ix.indexed.Add(uint64(n))
	ix.watermark.Store(b.State.Next)
	return n, nil
}

var errReplaced = errors.New("replaced")

// remember keeps the terms written of the block the new watermark is in, when it knows them
// all: this batch began the block, or the batch before it knew them too.
func (ix *Indexer) remember(start uint64, b *Batch) {
	ix.wrote, ix.gen = b.State.Next, b.State.Generation
	switch {
	case b.State.Next%BlockSize == 0:
		ix.stored = map[Term]bool{} // the next batch begins a block
		return
	case b.Stored != nil:
		ix.stored = b.Stored
	case start%BlockSize == 0:
		ix.stored = map[Term]bool{}
	default:
		ix.stored = nil
		return
	}
	for k := range b.Postings {
		ix.stored[k.Term] = true
	}
}

// reset empties the index and indexes its first batch again; logged and counted.
func (ix *Indexer) reset(ctx context.Context, may bool, why string) (int, error) {
	if !may {
		return 0, fmt.Errorf("audit index: the index needs rebuilding again right after a rebuild: %s", why)
	}
	ix.log.LogAttrs(ctx, slog.LevelWarn, "audit index: rebuilding the index", slog.String("why", why))
	ix.rebuilds.Add(1)
	ix.dropped, ix.stored = 0, nil
	if err := ix.o.Index.Reset(ctx); err != nil {
		return 0, err
	}
	return ix.step(ctx, false)
}

// drop removes the rows of blocks retention has pruned whole; it returns where the log begins.
func (ix *Indexer) drop(ctx context.Context) (uint64, error) {
	p, ok := ix.o.Ledger.(ledger.Pruner)
	if !ok {
		return 0, nil
	}
	base, _, ok, err := p.Base(ctx)
	if err != nil || !ok || base/BlockSize <= ix.dropped {
		return base, err
	}
	if err := ix.o.Index.Drop(ctx, base/BlockSize); err != nil {
		return 0, err
	}
	ix.dropped = base / BlockSize
	return base, nil
}

// fields is what the index reads of a record: the fields the console's search filters on,
// decoded alone (ledger.ParseRecord checks a whole record, at several times the cost).
type fields struct {
	Time   time.Time   `json:"time"`
	Kind   ledger.Kind `json:"kind"`
	Reason string      `json:"reason"`
	Agent  struct {
		ID string `json:"id"`
	} `json:"agent"`
	User struct {
		ID string `json:"id"`
	} `json:"user"`
	Tool     string `json:"tool"`
	Decision string `json:"decision"`
	Policy   struct {
		Rule string `json:"rule"`
	} `json:"policy"`
	Session struct {
		ID string `json:"id"`
	} `json:"session"`
}

// add records r's terms at seq.
func (b *Batch) add(seq uint64, r *fields) {
	blk, off := seq/BlockSize, uint16(seq%BlockSize)
	kind := (&ledger.Record{Kind: r.Kind, Reason: r.Reason}).Event()
	for _, t := range [...]Term{{FieldKind, string(kind)}, {FieldAgent, r.Agent.ID}, {FieldUser, r.User.ID}, {FieldTool, r.Tool},
		{FieldDecision, strings.ToLower(r.Decision)}, {FieldRule, r.Policy.Rule}, {FieldSession, r.Session.ID}} {
		if t.Value == "" {
			continue
		}
		t.Value = StoredValue(t.Value)
		k := Key{t, blk}
		b.Postings[k] = append(b.Postings[k], off)
	}
	ns := nanos(r.Time)
	s, ok := b.Spans[blk]
	if !ok {
		s = Span{Block: blk, Min: ns, Max: ns}
	}
	s.Min, s.Max = min(s.Min, ns), max(s.Max, ns)
	b.Spans[blk] = s
}
