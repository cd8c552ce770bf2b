package console

import (
	"context"
	"errors"
	"fmt"
	"time"

	segjson "github.com/segmentio/encoding/json"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// statsBudget bounds the records a statistics page (overview, agents, policies) reads.
const statsBudget = 200_000

// stat is what the statistics pages count of a record. It is decoded alone, without the checks
// ledger.ParseRecord makes of a whole record (whether the ledger is intact is
// `portcullis audit verify`'s to say), at a fraction of the cost: a page reads up to statsBudget
// records. A page that shows records reads them in full (Console.record).
type stat struct {
	Time  time.Time   `json:"time"`
	Kind  ledger.Kind `json:"kind"`
	Agent struct {
		ID       string `json:"id"`
		Verified bool   `json:"verified"`
	} `json:"agent"`
	Tool     string `json:"tool"`
	Decision string `json:"decision"`
	Policy   struct {
		Rule string `json:"rule"`
	} `json:"policy"`
	PolicyVersion string     `json:"policy_version"`
	Reason        string     `json:"reason"`
	Anomalies     []struct{} `json:"anomalies"`
	Findings      []struct{} `json:"findings"`
	// Alert and Message are an alert record's (the alerts page).
	Alert   *ledger.Alert `json:"alert"`
	Message string        `json:"message"`
}

// scanBack calls fn for every record from the newest back to since, newest chunk first (records
// within a chunk in ledger order), reading at most budget records. Records are appended in time
// order, so the first record older than since ends the walk. truncated reports that the budget
// ran out before since was reached.
func (c *Console) scanBack(ctx context.Context, since time.Time, budget int, fn func(seq uint64, r *stat)) (truncated bool, err error) {
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
			var r stat
			if err := segjson.Unmarshal(e.Data, &r); err != nil {
				return fmt.Errorf("record %d: %w", e.Seq, err)
			}
			if r.Time.Before(since) {
				done = true
				return nil
			}
			fn(e.Seq, &r)
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

// rowsAt reads the records at seqs, newest first, that p may see.
func (c *Console) rowsAt(ctx context.Context, p Principal, seqs []uint64) ([]row, error) {
	out := make([]row, 0, len(seqs))
	for _, seq := range seqs {
		x, ok, err := c.record(ctx, p, seq)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, x)
		}
	}
	return out, nil
}
