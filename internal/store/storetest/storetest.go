// Package storetest is the contract every ledger.Store must pass, unchanged: SQLite today,
// PostgreSQL next. A store's test calls RunLedgerStore with a constructor of empty stores.
// It imports the ledger's interface and the testing packages only.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

func entries(from, n int) []ledger.Entry {
	out := make([]ledger.Entry, n)
	for i := range out {
		seq := uint64(from + i)
		out[i] = ledger.Entry{Seq: seq, Data: []byte(fmt.Sprintf(`{"v":1,"seq":%d,"prev":"","x":"\u0000 bytes %d"}`, seq, seq))}
	}
	return out
}

func scanAll(t *testing.T, s ledger.Store, from uint64) []ledger.Entry {
	t.Helper()
	var out []ledger.Entry
	err := s.Scan(context.Background(), from, func(e ledger.Entry) error {
		out = append(out, ledger.Entry{Seq: e.Seq, Data: append([]byte(nil), e.Data...)})
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%d): %v", from, err)
	}
	return out
}

func checkpoints(t *testing.T, s ledger.Store) []ledger.StoredCheckpoint {
	t.Helper()
	var out []ledger.StoredCheckpoint
	if err := s.Checkpoints(context.Background(), func(c ledger.StoredCheckpoint) error {
		out = append(out, ledger.StoredCheckpoint{Size: c.Size, Note: append([]byte(nil), c.Note...), Frontier: append([]byte(nil), c.Frontier...)})
		return nil
	}); err != nil {
		t.Fatalf("Checkpoints: %v", err)
	}
	return out
}

func size(t *testing.T, s ledger.Store) uint64 {
	t.Helper()
	n, err := s.Size(context.Background())
	if err != nil {
		t.Fatalf("Size: %v", err)
	}
	return n
}

// RunLedgerStore runs the ledger.Store contract against stores made by newStore (each empty
// and private to its subtest).
func RunLedgerStore(t *testing.T, newStore func(t *testing.T) ledger.Store) {
	ctx := context.Background()
	runPrune(t, newStore)

	t.Run("EmptyStore", func(t *testing.T) {
		s := newStore(t)
		if n := size(t, s); n != 0 {
			t.Errorf("Size = %d, want 0", n)
		}
		if got := scanAll(t, s, 0); len(got) != 0 {
			t.Errorf("Scan of an empty store = %d entries", len(got))
		}
		if _, ok, err := s.LatestCheckpoint(ctx); err != nil || ok {
			t.Errorf("LatestCheckpoint = ok %v, err %v; want none", ok, err)
		}
	})

	t.Run("CommitKeepsExactBytes", func(t *testing.T) {
		s := newStore(t)
		want := entries(0, 5)
		want[3].Data = append(want[3].Data, 0xff, 0x00, '\n') // any bytes, kept verbatim
		if err := s.Commit(ctx, want, nil); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, scanAll(t, s, 0)); diff != "" {
			t.Errorf("stored entries (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want[2:], scanAll(t, s, 2)); diff != "" {
			t.Errorf("Scan from 2 (-want +got):\n%s", diff)
		}
		if n := size(t, s); n != 5 {
			t.Errorf("Size = %d, want 5", n)
		}
	})

	t.Run("CommitDoesNotRetainCallerBuffers", func(t *testing.T) {
		s := newStore(t)
		es := entries(0, 2)
		orig := append([]byte(nil), es[0].Data...)
		if err := s.Commit(ctx, es, &ledger.StoredCheckpoint{Size: 2, Note: []byte("n\n"), Frontier: []byte{1}}); err != nil {
			t.Fatal(err)
		}
		for i := range es[0].Data {
			es[0].Data[i] = 'X'
		}
		if got := scanAll(t, s, 0)[0].Data; string(got) != string(orig) {
			t.Errorf("stored bytes changed with the caller's buffer: %q", got)
		}
	})

	t.Run("CommitMustContinueAtSize", func(t *testing.T) {
		s := newStore(t)
		if err := s.Commit(ctx, entries(0, 3), nil); err != nil {
			t.Fatal(err)
		}
		for _, from := range []int{0, 2, 4} {
			err := s.Commit(ctx, entries(from, 2), nil)
			if !errors.Is(err, ledger.ErrConflict) {
				t.Errorf("Commit starting at %d on size 3: err = %v, want ErrConflict", from, err)
			}
		}
		if n := size(t, s); n != 3 {
			t.Errorf("Size after conflicts = %d, want 3", n)
		}
		if err := s.Commit(ctx, entries(3, 2), nil); err != nil {
			t.Errorf("Commit at the current size: %v", err)
		}
	})

	t.Run("CommitIsAtomic", func(t *testing.T) {
		s := newStore(t)
		es := entries(0, 3)
		es[2].Seq = 7 // a gap inside the batch: the whole batch must fail
		if err := s.Commit(ctx, es, nil); err == nil {
			t.Fatal("Commit with a gap inside the batch succeeded")
		}
		if n := size(t, s); n != 0 {
			t.Errorf("Size after a failed batch = %d, want 0 (nothing of it visible)", n)
		}
	})

	t.Run("Checkpoints", func(t *testing.T) {
		s := newStore(t)
		c1 := ledger.StoredCheckpoint{Size: 2, Note: []byte("note one\n"), Frontier: []byte{1, 2, 3}}
		c2 := ledger.StoredCheckpoint{Size: 5, Note: []byte("note two\n"), Frontier: []byte{4}}
		if err := s.Commit(ctx, entries(0, 2), &c1); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, entries(2, 3), &c2); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, nil, &c2); err != nil { // a checkpoint alone
			t.Fatal(err)
		}
		if diff := cmp.Diff([]ledger.StoredCheckpoint{c1, c2, c2}, checkpoints(t, s)); diff != "" {
			t.Errorf("checkpoints (-want +got):\n%s", diff)
		}
		got, ok, err := s.LatestCheckpoint(ctx)
		if err != nil || !ok {
			t.Fatalf("LatestCheckpoint: ok %v err %v", ok, err)
		}
		if diff := cmp.Diff(c2, got); diff != "" {
			t.Errorf("latest checkpoint (-want +got):\n%s", diff)
		}
		if err := s.Commit(ctx, nil, &ledger.StoredCheckpoint{Size: 9, Note: []byte("x\n")}); err == nil {
			t.Error("a checkpoint beyond the records was accepted")
		}
	})

	t.Run("ScanStopsWithCallbackError", func(t *testing.T) {
		s := newStore(t)
		if err := s.Commit(ctx, entries(0, 10), nil); err != nil {
			t.Fatal(err)
		}
		stop := errors.New("stop here")
		var seen []uint64
		err := s.Scan(ctx, 3, func(e ledger.Entry) error {
			seen = append(seen, e.Seq)
			if e.Seq == 5 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Errorf("Scan returned %v, want the callback's error", err)
		}
		if diff := cmp.Diff([]uint64{3, 4, 5}, seen); diff != "" {
			t.Errorf("seen (-want +got):\n%s", diff)
		}
		if got := scanAll(t, s, 10); len(got) != 0 {
			t.Errorf("Scan from the end = %d entries", len(got))
		}
	})

	t.Run("TrimTail", func(t *testing.T) {
		s := newStore(t)
		if err := s.Commit(ctx, entries(0, 4), &ledger.StoredCheckpoint{Size: 4, Note: []byte("n\n")}); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, entries(4, 3), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Trim(ctx, 3); !errors.Is(err, ledger.ErrTrimCheckpointed) {
			t.Errorf("Trim below a checkpoint: err = %v, want ErrTrimCheckpointed", err)
		}
		if n := size(t, s); n != 7 {
			t.Errorf("Size after a refused trim = %d, want 7", n)
		}
		if err := s.Trim(ctx, 6); err != nil {
			t.Fatalf("Trim(6): %v", err)
		}
		if n := size(t, s); n != 6 {
			t.Errorf("Size after Trim(6) = %d, want 6", n)
		}
		if err := s.Commit(ctx, entries(6, 1), nil); err != nil {
			t.Errorf("Commit after a trim: %v", err)
		}
	})

	t.Run("ConcurrentReadersDuringCommits", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		errc := make(chan error, 4)
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					var next uint64
					if err := s.Scan(ctx, 0, func(e ledger.Entry) error {
						if e.Seq != next {
							return fmt.Errorf("scan saw seq %d, want %d", e.Seq, next)
						}
						next++
						return nil
					}); err != nil {
						errc <- err
						return
					}
				}
			}()
		}
		for i := 0; i < 20; i++ {
			if err := s.Commit(ctx, entries(i*5, 5), nil); err != nil {
				t.Fatal(err)
			}
		}
		close(stop)
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
		if n := size(t, s); n != 100 {
			t.Errorf("Size = %d, want 100", n)
		}
	})
}
