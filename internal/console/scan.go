package console

import (
	"context"
	"errors"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// statsBudget bounds the records a statistics page (overview, agents, policies) reads.
const statsBudget = 200_000

// scanBack calls fn for every record from the newest back to since, newest chunk first (records
// within a chunk in ledger order), reading at most budget records. Records are appended in time
// order, so the first record older than since ends the walk. truncated reports that the budget
// ran out before since was reached.
func (c *Console) scanBack(ctx context.Context, since time.Time, budget int, fn func(seq uint64, r *ledger.Record)) (truncated bool, err error) {
	hi, err := c.o.Ledger.Size(ctx)
	if err != nil {
		return false, err
	}
	read, done := 0, false
	for hi > 0 && !done {
		lo := uint64(0)
		if hi > scanChunk {
			lo = hi - scanChunk
		}
		err := c.o.Ledger.Scan(ctx, lo, func(e ledger.Entry) error {
			if e.Seq >= hi {
				return errStop
			}
			read++
			r, err := ledger.ParseRecord(e.Data)
			if err != nil {
				return err
			}
			if r.Time.Before(since) {
				done = true
				return nil
			}
			fn(e.Seq, r)
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return false, err
		}
		hi = lo
		if read >= budget {
			return hi > 0 && !done, nil
		}
	}
	return false, nil
}

// agentOf is a record's agent ID, "" when it has none.
func agentOf(r *ledger.Record) string {
	if r.Agent != nil {
		return r.Agent.ID
	}
	return ""
}
