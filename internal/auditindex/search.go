package auditindex

import (
	"context"
	"time"
)

// Query is a conjunction: every term, and a time within [Since, Until] (zero: unbounded).
type Query struct {
	Terms        []Term
	Since, Until time.Time
}

// Indexed says whether the index narrows q at all; a query that it does not is a scan.
func (q Query) Indexed() bool { return len(q.Terms) > 0 || !q.Since.IsZero() || !q.Until.IsZero() }

// fetch is how many rows one read of a term's postings or of the spans returns.
const fetch = 64

// Candidates calls fn with the records below before that may match q — every indexed record
// that does — a block at a time, newest block first, seqs descending. fn returns false to
// stop. Records at or above the watermark are not the index's: the caller scans them.
func Candidates(ctx context.Context, r Reader, q Query, before uint64, fn func(seqs []uint64) (bool, error)) error {
	if before == 0 {
		return nil
	}
	its := make([]*iter, 0, len(q.Terms)+1)
	for _, t := range q.Terms {
		its = append(its, &iter{r: r, term: t})
	}
	if !q.Since.IsZero() || !q.Until.IsZero() {
		lo, hi := int64(-1<<63), int64(1<<63-1)
		if !q.Since.IsZero() {
			lo = nanos(q.Since)
		}
		if !q.Until.IsZero() {
			hi = nanos(q.Until)
		}
		its = append(its, &iter{r: r, spans: true, lo: lo, hi: hi})
	}
	if len(its) == 0 {
		return nil
	}
	var offs, other []uint16
	seqs := make([]uint64, 0, BlockSize)
	cur := (before - 1) / BlockSize
	for {
		// Leapfrog: move to the highest block every iterator holds.
		aligned := true
		for _, it := range its {
			b, ok, err := it.seek(ctx, cur)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if b < cur {
				cur, aligned = b, false
				break
			}
		}
		if !aligned {
			continue
		}
		all := true // every offset of the block (only time bounds hold it)
		offs = offs[:0]
		for _, it := range its {
			if it.spans {
				continue
			}
			var err error
			if all {
				if offs, err = Decode(offs[:0], it.buf[it.i].Seqs); err != nil {
					return err
				}
				all = false
				continue
			}
			if other, err = Decode(other[:0], it.buf[it.i].Seqs); err != nil {
				return err
			}
			offs = intersect(offs, other)
		}
		seqs = seqs[:0]
		base := cur * BlockSize
		if all {
			for o := BlockSize - 1; o >= 0; o-- {
				if s := base + uint64(o); s < before {
					seqs = append(seqs, s)
				}
			}
		} else {
			for i := len(offs) - 1; i >= 0; i-- {
				if s := base + uint64(offs[i]); s < before {
					seqs = append(seqs, s)
				}
			}
		}
		if len(seqs) > 0 {
			more, err := fn(seqs)
			if err != nil || !more {
				return err
			}
		}
		if cur == 0 {
			return nil
		}
		cur--
	}
}

// iter walks one term's postings (or the spans within [lo, hi]) from the highest block down.
type iter struct {
	r      Reader
	term   Term
	spans  bool
	lo, hi int64
	buf    []Posting
	sbuf   []Span
	i      int
	// end: the store has no rows below the buffer's last.
	end bool
	// loaded: the buffer holds what the last read returned.
	loaded bool
}

// seek positions the iterator on its highest block <= b and returns it; ok is false when it
// has none.
func (it *iter) seek(ctx context.Context, b uint64) (uint64, bool, error) {
	for {
		if it.loaded {
			for ; it.i < it.len(); it.i++ {
				if blk, ok := it.at(it.i); ok && blk <= b {
					return blk, true, nil
				}
			}
			if it.end {
				return 0, false, nil
			}
			// Past the buffer: read on from below its last block (or from b).
			last := it.block(it.len() - 1)
			if last == 0 {
				return 0, false, nil
			}
			b = min(b, last-1)
		}
		if err := it.load(ctx, b); err != nil {
			return 0, false, err
		}
	}
}

func (it *iter) load(ctx context.Context, b uint64) error {
	it.i, it.loaded = 0, true
	var n int
	if it.spans {
		s, err := it.r.Spans(ctx, b, fetch)
		if err != nil {
			return err
		}
		it.sbuf, n = s, len(s)
	} else {
		p, err := it.r.Postings(ctx, it.term, b, fetch)
		if err != nil {
			return err
		}
		it.buf, n = p, len(p)
	}
	it.end = n < fetch
	if n == 0 {
		it.end = true
	}
	return nil
}

func (it *iter) len() int {
	if it.spans {
		return len(it.sbuf)
	}
	return len(it.buf)
}

func (it *iter) block(i int) uint64 {
	if it.spans {
		return it.sbuf[i].Block
	}
	return it.buf[i].Block
}

// at is row i's block, and whether it qualifies (a span must meet [lo, hi]).
func (it *iter) at(i int) (uint64, bool) {
	if it.spans {
		s := it.sbuf[i]
		return s.Block, s.Max >= it.lo && s.Min <= it.hi
	}
	return it.buf[i].Block, true
}
