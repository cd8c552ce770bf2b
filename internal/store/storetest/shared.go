package storetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// RunSharedStore runs the ledger.SharedStore contract. newPair returns two handles on one
// empty log — as two replicas would open it (for PostgreSQL: two pools) — private to the
// subtest. The stores also pass RunLedgerStore.
func RunSharedStore(t *testing.T, newPair func(t *testing.T) (a, b ledger.SharedStore)) {
	ctx := context.Background()

	t.Run("ExclusiveCommitIsSeenByTheOther", func(t *testing.T) {
		a, b := newPair(t)
		if err := a.Commit(ctx, entries(0, 2), nil); err != nil {
			t.Fatal(err)
		}
		cp := &ledger.StoredCheckpoint{Size: 5, Note: []byte("five\n"), Frontier: []byte{5}}
		err := b.CommitExclusive(ctx, func(v ledger.View) ([]ledger.Entry, *ledger.StoredCheckpoint, error) {
			n, err := v.Size(ctx)
			if err != nil || n != 2 {
				return nil, nil, fmt.Errorf("view size = %d, %v; want the other handle's 2", n, err)
			}
			var seen []ledger.Entry
			if err := v.Scan(ctx, 0, func(e ledger.Entry) error {
				seen = append(seen, ledger.Entry{Seq: e.Seq, Data: append([]byte(nil), e.Data...)})
				return nil
			}); err != nil {
				return nil, nil, err
			}
			if diff := cmp.Diff(entries(0, 2), seen); diff != "" {
				return nil, nil, fmt.Errorf("view scan (-want +got):\n%s", diff)
			}
			if _, ok, err := v.LatestCheckpoint(ctx); err != nil || ok {
				return nil, nil, fmt.Errorf("view latest checkpoint: ok %v, %v; want none", ok, err)
			}
			return entries(2, 3), cp, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(entries(0, 5), scanAll(t, a, 0)); diff != "" {
			t.Errorf("records seen by the other handle (-want +got):\n%s", diff)
		}
		if got, ok, err := a.LatestCheckpoint(ctx); err != nil || !ok || got.Size != 5 {
			t.Errorf("latest checkpoint seen by the other handle: %+v %v %v", got, ok, err)
		}
	})

	t.Run("AbortCommitsNothing", func(t *testing.T) {
		a, b := newPair(t)
		refused := errors.New("refused by the caller")
		err := a.CommitExclusive(ctx, func(ledger.View) ([]ledger.Entry, *ledger.StoredCheckpoint, error) {
			return entries(0, 3), nil, refused
		})
		if !errors.Is(err, refused) {
			t.Errorf("CommitExclusive returned %v, want the callback's error", err)
		}
		if n := size(t, b); n != 0 {
			t.Errorf("Size after an aborted commit = %d, want 0", n)
		}
		// Nothing to commit is no error, and commits nothing.
		if err := a.CommitExclusive(ctx, func(ledger.View) ([]ledger.Entry, *ledger.StoredCheckpoint, error) { return nil, nil, nil }); err != nil {
			t.Errorf("an empty exclusive commit: %v", err)
		}
		if got := checkpoints(t, b); len(got) != 0 {
			t.Errorf("an empty exclusive commit stored checkpoints %v", got)
		}
	})

	t.Run("StaleRecordsConflict", func(t *testing.T) {
		a, b := newPair(t)
		if err := a.Commit(ctx, entries(0, 2), nil); err != nil {
			t.Fatal(err)
		}
		err := b.CommitExclusive(ctx, func(ledger.View) ([]ledger.Entry, *ledger.StoredCheckpoint, error) {
			return entries(1, 2), nil, nil // written as if the log had 1 record
		})
		if !errors.Is(err, ledger.ErrConflict) {
			t.Errorf("records not at the current size: err = %v, want ErrConflict", err)
		}
		if n := size(t, a); n != 2 {
			t.Errorf("Size after a conflict = %d, want 2", n)
		}
	})

	// The lock: writers on both handles each read the size and append one record there.
	// Without mutual exclusion two would read the same size and one would conflict.
	t.Run("WritersAreSerialised", func(t *testing.T) {
		a, b := newPair(t)
		const writers, each = 8, 25
		var wg sync.WaitGroup
		errc := make(chan error, writers)
		for w := range writers {
			s := a
			if w%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					err := s.CommitExclusive(ctx, func(v ledger.View) ([]ledger.Entry, *ledger.StoredCheckpoint, error) {
						n, err := v.Size(ctx)
						if err != nil {
							return nil, nil, err
						}
						runtime.Gosched() // let another writer run between the read and the commit
						return []ledger.Entry{{Seq: n, Data: fmt.Appendf(nil, "writer %d record %d", w, i)}}, nil, nil
					})
					if err != nil {
						errc <- fmt.Errorf("writer %d, record %d: %w", w, i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
		got := scanAll(t, a, 0)
		seen := map[string]bool{}
		for i, e := range got {
			if e.Seq != uint64(i) {
				t.Fatalf("record %d stored at seq %d", i, e.Seq)
			}
			if seen[string(e.Data)] {
				t.Errorf("%q stored twice", e.Data)
			}
			seen[string(e.Data)] = true
		}
		if len(got) != writers*each {
			t.Errorf("%d records, want %d", len(got), writers*each)
		}
	})
}

// RunReplicas runs two ledgers — two replicas — on the two handles newPair returns, appending
// at once: every record is there exactly once, at the seq its caller was told, and the log
// verifies as if one writer had written it.
func RunReplicas(t *testing.T, newPair func(t *testing.T) (a, b ledger.SharedStore)) {
	ctx := context.Background()
	sa, sb := newPair(t)
	keys, err := ledger.GenerateKeys(t.TempDir(), ledger.NewOrigin())
	if err != nil {
		t.Fatal(err)
	}
	vs, _, err := keys.Verifiers()
	if err != nil {
		t.Fatal(err)
	}
	var replicas []*ledger.Ledger
	for _, st := range []ledger.Store{sa, sb} {
		l, err := ledger.Open(ctx, ledger.Options{Store: st, Signer: keys.Signer, Verifiers: vs, CheckpointRecords: 50})
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, l)
	}
	const callers, each = 8, 40
	told := make([]map[string]uint64, len(replicas)*callers)
	var wg sync.WaitGroup
	for r, l := range replicas {
		for c := range callers {
			m := map[string]uint64{}
			told[r*callers+c] = m
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					id := fmt.Sprintf("r%d-c%d-%d", r, c, i)
					seq, err := l.Append(ctx, &ledger.Record{Kind: ledger.KindDecision, Decision: "allow", DecisionID: id, Tool: "db.query"})
					if err != nil {
						t.Error(err)
						return
					}
					m[id] = seq
				}
			}()
		}
	}
	wg.Wait()
	for _, l := range replicas {
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}

	var recs []*ledger.Record
	if err := sa.Scan(ctx, 0, func(e ledger.Entry) error {
		r, err := ledger.ParseRecord(e.Data)
		recs = append(recs, r)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	kinds := map[ledger.Kind]int{}
	ids := map[string]int{}
	for _, r := range recs {
		kinds[r.Kind]++
		if r.Kind == ledger.KindDecision {
			ids[r.DecisionID]++
		}
	}
	for _, m := range told {
		for id, seq := range m {
			if seq >= uint64(len(recs)) || recs[seq].DecisionID != id {
				t.Errorf("%s was told seq %d, which holds something else", id, seq)
			}
		}
	}
	want := len(replicas) * callers * each
	if len(ids) != want || kinds[ledger.KindStartup] != 2 || kinds[ledger.KindShutdown] != 2 || kinds[ledger.KindRecovery] != 0 {
		t.Errorf("%d distinct decisions (want %d), kinds %v", len(ids), want, kinds)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s recorded %d times", id, n)
		}
	}
	rep, err := ledger.Verify(ctx, sb, ledger.VerifyOptions{Keys: keys.Public})
	if err != nil || !rep.Intact || rep.RecordsChecked != uint64(len(recs)) || rep.UnsignedRecords != 0 || rep.CheckpointsChecked < len(recs)/50 {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}
