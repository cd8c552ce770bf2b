package ledger_test

// Two ledgers appending to one log at once: storetest.RunSharedStore's ReplicasShareOneLedger,
// run on the shared memory store and on PostgreSQL. Here: what happens around it.

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
)

// countingStore counts the records read inside exclusive commits.
type countingStore struct {
	*memory.Shared
	scanned atomic.Int64
}

func (s *countingStore) CommitExclusive(ctx context.Context, fn func(ledger.View) ([]ledger.Entry, *ledger.StoredCheckpoint, error)) error {
	return s.Shared.CommitExclusive(ctx, func(v ledger.View) ([]ledger.Entry, *ledger.StoredCheckpoint, error) {
		return fn(countingView{v, &s.scanned})
	})
}

type countingView struct {
	ledger.View
	n *atomic.Int64
}

func (v countingView) Scan(ctx context.Context, from uint64, fn func(ledger.Entry) error) error {
	return v.View.Scan(ctx, from, func(e ledger.Entry) error {
		v.n.Add(1)
		return fn(e)
	})
}

// A replica that fell far behind does not read every record it missed while holding the
// writer lock: it restarts from the latest signed checkpoint and reads only the tail.
func TestReplicaFarBehindStartsFromTheCheckpoint(t *testing.T) {
	defer ledger.SetCatchUpScanMax(100)()
	st := &countingStore{Shared: memory.NewShared()}
	e := newEnv(t, st)
	cp := func(o *ledger.Options) { o.CheckpointRecords = 64 }
	busy, idle := e.open(t, cp), e.open(t, cp)
	for i := range 1000 {
		mustAppend(t, busy, decision(i))
	}
	before := st.scanned.Load()
	seq := mustAppend(t, idle, decision(1000))
	if read := st.scanned.Load() - before; read > 64 {
		t.Errorf("the idle replica read %d records to catch up; want at most the tail after the latest checkpoint", read)
	}
	recs := records(t, e.st)
	if seq != uint64(len(recs)-1) || recs[seq].DecisionID != decision(1000).DecisionID {
		t.Errorf("the idle replica's record went to seq %d of %d", seq, len(recs))
	}
	mustClose(t, busy)
	mustClose(t, idle)
	if rep := e.verify(t); !rep.Intact {
		t.Errorf("verify: %+v", rep)
	}
}

// A replica with other keys than the log's refuses to start: its checkpoints would not verify.
func TestReplicaWithOtherKeysRefusesToStart(t *testing.T) {
	e := newEnv(t, memory.NewShared())
	l := e.open(t, nil)
	defer mustClose(t, l)
	other := newEnv(t, e.st) // fresh keys, same log
	_, err := ledger.Open(context.Background(), other.options(t))
	if !errors.Is(err, ledger.ErrInconsistent) || !strings.Contains(err.Error(), "must share its keys") {
		t.Fatalf("open with other keys = %v, want ErrInconsistent saying replicas share keys", err)
	}
}

// Records another replica appended are checked before anything is chained onto them: a
// broken link fails the commit (the call is denied), and the replica reports it.
func TestReplicaRefusesABrokenChain(t *testing.T) {
	ms := memory.NewShared()
	e := newEnv(t, ms)
	a, b := e.open(t, nil), e.open(t, nil)
	for i := range 3 {
		mustAppend(t, a, decision(i))
	}
	recs, _ := ms.Raw()
	last := (*recs)[len(*recs)-1]
	(*recs)[len(*recs)-1] = []byte(strings.Replace(string(last), "invoices", "invoiceZ", 1)) // the next record's prev no longer matches
	mustAppend(t, a, decision(3))                                                            // a chains onto its own view, not rereading
	_, err := b.Append(context.Background(), decision(4))
	if !errors.Is(err, ledger.ErrNotDurable) || !errors.Is(err, ledger.ErrInconsistent) {
		t.Fatalf("append after a broken link = %v, want ErrNotDurable and ErrInconsistent", err)
	}
	if b.Err() == nil {
		t.Error("the replica's health does not report the broken log")
	}
}

// When every replica has stopped cleanly, the next start finds a clean log: a startup record,
// no recovery record.
func TestSharedLogRestartsClean(t *testing.T) {
	e := newEnv(t, memory.NewShared())
	a, b := e.open(t, nil), e.open(t, nil)
	mustAppend(t, a, decision(1))
	mustAppend(t, b, decision(2))
	mustClose(t, a)
	mustClose(t, b)
	c := e.open(t, nil)
	mustAppend(t, c, decision(3))
	mustClose(t, c)
	var kinds []string
	for _, r := range records(t, e.st) {
		kinds = append(kinds, string(r.Kind))
	}
	if got := strings.Join(kinds, " "); got != "startup startup decision decision shutdown shutdown startup decision shutdown" {
		t.Errorf("kinds: %s", got)
	}
	if rep := e.verify(t); !rep.Intact {
		t.Errorf("verify: %+v", rep)
	}
}

// A replica starting on a shared log reads the tail after the latest checkpoint in full, as
// recovery does: a damaged record refuses the start (and is not trimmed: it may be another's).
func TestReplicaStartRefusesADamagedTail(t *testing.T) {
	ms := memory.NewShared()
	e := newEnv(t, ms)
	a := e.open(t, nil)
	defer mustClose(t, a)
	mustAppend(t, a, decision(1))
	recs, _ := ms.Raw()
	n := len(*recs)
	(*recs)[n-1] = []byte(strings.Replace(string((*recs)[n-1]), `"tool":"db.query"`, `"tool":"db.query`, 1)) // header and link intact, body not JSON
	_, err := ledger.Open(context.Background(), e.options(t))
	if !errors.Is(err, ledger.ErrInconsistent) {
		t.Fatalf("open on a damaged tail = %v, want ErrInconsistent", err)
	}
	if recs, _ := ms.Raw(); len(*recs) != n {
		t.Errorf("the refused start changed the log: %d records, want %d", len(*recs), n)
	}
}

// A replica whose head is behind the records another pruned (archived while it was idle)
// restarts its head from the latest signed checkpoint instead of failing its commits.
func TestReplicaBehindAPruneContinues(t *testing.T) {
	ctx := context.Background()
	st := memory.NewShared()
	e := newEnv(t, st)
	cp := func(o *ledger.Options) { o.CheckpointRecords = 10 }
	busy, idle := e.open(t, cp), e.open(t, cp)
	for i := range 50 {
		mustAppend(t, busy, decision(i))
	}
	latest, _, _ := st.LatestCheckpoint(ctx)
	opts := ledger.VerifyOptions{Keys: e.keys.Public, CheckpointRecords: 10}
	if _, err := ledger.ArchiveAndPrune(ctx, st, t.TempDir(), latest.Size, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Append(ctx, decision(50)); err != nil {
		t.Fatalf("the idle replica's append after a prune past its head: %v", err)
	}
	mustClose(t, busy)
	mustClose(t, idle)
	if rep := e.verify(t); !rep.Intact || rep.ArchivedRecords != latest.Size {
		t.Errorf("verify: %+v", rep)
	}
}
