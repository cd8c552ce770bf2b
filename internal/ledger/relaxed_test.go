package ledger_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
)

// relaxedStore is the memory store with the relaxed commit path: it counts how each record was
// committed and which records are "on disk" (committed durably, or synced since).
type relaxedStore struct {
	*memory.Store
	mu        sync.Mutex
	durable   uint64 // records on disk
	relaxed   int    // records committed relaxed
	syncs     int
	size      uint64
	lastKinds []bool // per commit: relaxed?
}

func (s *relaxedStore) Commit(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	if err := s.Store.Commit(ctx, recs, cp); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.size += uint64(len(recs))
	s.durable = s.size // a durable commit syncs the log, and everything before it
	s.lastKinds = append(s.lastKinds, false)
	return nil
}

func (s *relaxedStore) CommitRelaxed(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	if err := s.Store.Commit(ctx, recs, cp); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.size += uint64(len(recs))
	s.relaxed += len(recs)
	s.lastKinds = append(s.lastKinds, true)
	return nil
}

func (s *relaxedStore) Sync(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs++
	s.durable = s.size
	return nil
}

func (s *relaxedStore) state() (durable, size uint64, relaxed, syncs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durable, s.size, s.relaxed, s.syncs
}

// With RelaxedResults, a tool_result record is committed without waiting for the disk and is on
// disk within RelaxedSyncBound with no further traffic; decisions are always durable before
// Append returns; without the option every record is durable.
func TestRelaxedResults(t *testing.T) {
	ctx := context.Background()
	st := &relaxedStore{Store: memory.New()}
	e := newEnv(t, st)
	l := e.open(t, func(o *ledger.Options) {
		o.RelaxedResults = true
		o.RelaxedSyncBound = 50 * time.Millisecond
	})
	defer l.Close(ctx)

	if _, err := l.Append(ctx, &ledger.Record{Kind: ledger.KindDecision, DecisionID: "dec_1", Tool: "t", Decision: "allow"}); err != nil {
		t.Fatal(err)
	}
	if durable, size, relaxed, _ := st.state(); durable != size || relaxed != 0 {
		t.Fatalf("decision: durable %d of %d, %d relaxed", durable, size, relaxed)
	}
	seq, err := l.Append(ctx, &ledger.Record{Kind: ledger.KindToolResult, DecisionID: "dec_1", Tool: "t"})
	if err != nil {
		t.Fatal(err)
	}
	durable, size, relaxed, _ := st.state()
	if relaxed != 1 || size != seq+1 {
		t.Fatalf("result: %d relaxed, size %d, seq %d", relaxed, size, seq)
	}
	if durable > seq {
		t.Fatalf("result on disk already (durable %d): it was not relaxed", durable)
	}
	// Idle: the writer syncs within the bound.
	deadline := time.Now().Add(2 * time.Second)
	for {
		durable, size, _, syncs := st.state()
		if durable == size && syncs >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relaxed result not synced: durable %d of %d, %d syncs", durable, size, syncs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A decision after a relaxed result is durable, and so is the result before it.
	if _, err := l.Append(ctx, &ledger.Record{Kind: ledger.KindToolResult, DecisionID: "dec_1", Tool: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, &ledger.Record{Kind: ledger.KindDecision, DecisionID: "dec_2", Tool: "t", Decision: "deny"}); err != nil {
		t.Fatal(err)
	}
	if durable, size, _, _ := st.state(); durable != size {
		t.Errorf("after a decision: durable %d of %d", durable, size)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if durable, size, _, _ := st.state(); durable != size {
		t.Errorf("after close: durable %d of %d", durable, size)
	}
	if rep := e.verify(t); !rep.Intact {
		t.Errorf("verify: %+v", rep)
	}

	// Without the option, a result is durable like everything else.
	st2 := &relaxedStore{Store: memory.New()}
	l2 := newEnv(t, st2).open(t, nil)
	defer l2.Close(ctx)
	if _, err := l2.Append(ctx, &ledger.Record{Kind: ledger.KindToolResult, DecisionID: "dec_1", Tool: "t"}); err != nil {
		t.Fatal(err)
	}
	if durable, size, relaxed, _ := st2.state(); relaxed != 0 || durable != size {
		t.Errorf("sync mode: %d relaxed, durable %d of %d", relaxed, durable, size)
	}
}
