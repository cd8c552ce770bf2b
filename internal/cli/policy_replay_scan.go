package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	segjson "github.com/segmentio/encoding/json"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// replayFields are the fields of a record replay reads. Decoding only these skips what a
// decision record holds most of — the policy's quoted conditions, approvals, hashes — without
// building it.
type replayFields struct {
	V             int               `json:"v"`
	Time          time.Time         `json:"time"`
	Kind          ledger.Kind       `json:"kind"`
	DecisionID    string            `json:"decision_id"`
	Agent         *ledger.Principal `json:"agent"`
	User          *ledger.Principal `json:"user"`
	Tool          string            `json:"tool"`
	Params        json.RawMessage   `json:"params"`
	Redacted      []string          `json:"redacted"`
	ParamsDropped string            `json:"params_dropped"`
	Policy        *struct {
		Rule string `json:"rule"`
	} `json:"policy"`
	Decision    string       `json:"decision"`
	Reason      string       `json:"reason"`
	ThreatLevel threat.Level `json:"threat_level"`
	Findings    []struct {
		Kind string `json:"kind"`
	} `json:"findings"`
	Anomalies []struct {
		Signal string `json:"signal"`
	} `json:"anomalies"`
	Inputs   *ledger.Inputs  `json:"inputs"`
	Session  *ledger.Session `json:"session"`
	Approval *struct{}       `json:"approval"`
}

// decodeReplay decodes what replay reads of data into r (reset first). A record that is not one
// is an error the strict parser names. Strings point into data (no copy): r is valid only as
// long as data is, and what outlives the batch is copied when it is counted (replayer.count).
func decodeReplay(data []byte, f *replayFields, r *ledger.Record) error {
	*f = replayFields{}
	rest, err := segjson.Parse(data, f, segjson.ZeroCopy)
	if err := checkParsed(data, rest, err, f.V, f.Kind); err != nil {
		return err
	}
	*r = ledger.Record{V: f.V, Time: f.Time, Kind: f.Kind, DecisionID: f.DecisionID, Agent: f.Agent, User: f.User,
		Tool: f.Tool, Params: f.Params, Redacted: f.Redacted, ParamsDropped: f.ParamsDropped, Decision: f.Decision,
		Reason: f.Reason, ThreatLevel: f.ThreatLevel, Inputs: f.Inputs, Session: f.Session}
	if f.Policy != nil {
		r.Policy = &ledger.Policy{Rule: f.Policy.Rule}
	}
	if f.Approval != nil {
		r.Approval = &ledger.Approval{}
	}
	for _, x := range f.Findings {
		r.Findings = append(r.Findings, ledger.Finding{Kind: x.Kind})
	}
	for _, x := range f.Anomalies {
		r.Anomalies = append(r.Anomalies, ledger.Anomaly{Signal: x.Signal})
	}
	return nil
}

// selects reports whether r is a tool-call decision the filter selects (scanToolDecisions' test).
func (f *decisionFilter) selects(r *ledger.Record) bool {
	switch {
	case r.Event() != ledger.KindDecision, r.Agent == nil, r.Tool == "", r.Decision == "",
		f.agent != "" && r.Agent.ID != f.agent,
		f.tool != "" && r.Tool != f.tool,
		!f.after.IsZero() && r.Time.Before(f.after),
		!f.before.IsZero() && !r.Time.Before(f.before):
		return false
	}
	return true
}

// replayBatchSize is how many records one batch carries between the reader and the workers.
const replayBatchSize = 256

// replayBatch is a run of consecutive decision records: their bytes (copied out of the store's
// buffers) and, once decided, their outcomes; err is the first record that could not be read.
type replayBatch struct {
	idx  int
	data []byte
	ends []int
	seqs []uint64
	out  []replayOutcome
	err  error
}

// replayLedger streams the ledger read-only and re-decides every tool-call decision the filter
// selects: one goroutine reads the store, the workers (one a core) decode and decide batches of
// records, and rp counts the outcomes in ledger order — the report is the one a single pass
// would give. Memory is bounded by the batches in flight, whatever the ledger's size. It returns
// how many records it read.
func replayLedger(ctx context.Context, st ledger.Store, f decisionFilter, rp *replayer) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := max(1, runtime.GOMAXPROCS(0))
	inflight := 4 * workers
	free := make(chan *replayBatch, inflight)
	for range inflight {
		free <- &replayBatch{}
	}
	work := make(chan *replayBatch, inflight)
	done := make(chan *replayBatch, inflight)

	var scanned uint64
	scanErr := make(chan error, 1)
	go func() {
		defer close(work)
		var b *replayBatch
		next := 0
		send := func() bool {
			if b == nil {
				return true
			}
			select {
			case work <- b:
				b = nil
				return true
			case <-ctx.Done():
				return false
			}
		}
		err := st.Scan(ctx, 0, func(e ledger.Entry) error {
			scanned++
			if !bytes.Contains(e.Data, []byte(`"kind":"decision"`)) {
				// Cheap skip; the decoder decides for the rest. Unlike scanToolDecisions this
				// does not parse (so does not report) a record of another kind: replay
				// re-decides decisions, and `audit verify` is what checks every record.
				return nil
			}
			if b == nil {
				select {
				case b = <-free:
				case <-ctx.Done():
					return ctx.Err()
				}
				b.idx, next = next, next+1
				b.data, b.ends, b.seqs, b.err = b.data[:0], b.ends[:0], b.seqs[:0], nil
			}
			b.data = append(b.data, e.Data...)
			b.ends = append(b.ends, len(b.data))
			b.seqs = append(b.seqs, e.Seq)
			if len(b.ends) == replayBatchSize && !send() {
				return ctx.Err()
			}
			return nil
		})
		if err == nil && !send() {
			err = ctx.Err()
		}
		scanErr <- err
	}()

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			w := rp.worker()
			var fields replayFields
			var r ledger.Record
			for b := range work {
				b.out = slices.Grow(b.out[:0], len(b.ends))[:len(b.ends)]
				start := 0
				for i, end := range b.ends {
					o := &b.out[i]
					data := b.data[start:end]
					start = end
					if err := decodeReplay(data, &fields, &r); err != nil {
						b.err = fmt.Errorf("record %d: %w", b.seqs[i], err)
						b.out = b.out[:i]
						break
					}
					switch {
					case !f.selects(&r):
						*o = replayOutcome{skip: true}
					case r.Policy == nil || !slices.Contains(replayActions, strings.ToLower(r.Decision)):
						*o = replayOutcome{notByPolicy: true}
					default:
						w.decide(&r, o)
					}
				}
				done <- b // never blocks: done holds every batch there is
			}
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()

	// Count in ledger order; a batch decided before an earlier one waits its turn. On an error
	// the context is cancelled: the reader stops, the workers finish what they hold, and every
	// goroutine ends without anyone receiving from it.
	pending := map[int]*replayBatch{}
	next := 0
	for b := range done {
		pending[b.idx] = b
		for b := pending[next]; b != nil; b = pending[next] {
			delete(pending, next)
			next++
			for i := range b.out {
				rp.count(&b.out[i])
			}
			if b.err != nil {
				return 0, b.err
			}
			free <- b
		}
	}
	if err := <-scanErr; err != nil {
		return 0, err
	}
	return scanned, nil
}
