package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// runPrune is the ledger.Pruner contract: every store in internal/store implements it.
func runPrune(t *testing.T, newStore func(t *testing.T) ledger.Store) {
	ctx := context.Background()
	prunable := func(t *testing.T) (ledger.Store, ledger.Pruner) {
		s := newStore(t)
		p, ok := s.(ledger.Pruner)
		if !ok {
			t.Fatalf("%T does not implement ledger.Pruner", s)
		}
		return s, p
	}
	// cp commits records [from, from+n) and a checkpoint of from+n records.
	cp := func(t *testing.T, s ledger.Store, from, n int) {
		t.Helper()
		c := &ledger.StoredCheckpoint{Size: uint64(from + n), Note: []byte{byte(from + n)}, Frontier: []byte{}}
		if err := s.Commit(ctx, entries(from, n), c); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("PruneKeepsBaseAndLaterRecords", func(t *testing.T) {
		s, p := prunable(t)
		if _, _, ok, err := p.Base(ctx); err != nil || ok {
			t.Fatalf("Base of a new store: ok=%v err=%v", ok, err)
		}
		cp(t, s, 0, 5)
		cp(t, s, 5, 5)
		if err := s.Commit(ctx, entries(10, 2), nil); err != nil {
			t.Fatal(err)
		}
		if err := p.Prune(ctx, 5, []byte("base at 5")); err != nil {
			t.Fatal(err)
		}
		if got := size(t, s); got != 12 {
			t.Fatalf("Size after prune = %d, want 12 (the next seq does not change)", got)
		}
		if diff := cmp.Diff(entries(5, 7), scanAll(t, s, 0)); diff != "" {
			t.Fatalf("Scan(0) after prune (-want +got):\n%s", diff)
		}
		n, b, ok, err := p.Base(ctx)
		if err != nil || !ok || n != 5 || string(b) != "base at 5" {
			t.Fatalf("Base = %d %q %v %v", n, b, ok, err)
		}
		var sizes []uint64
		for _, c := range checkpoints(t, s) {
			sizes = append(sizes, c.Size)
		}
		if diff := cmp.Diff([]uint64{5, 10}, sizes); diff != "" {
			t.Fatalf("checkpoint sizes after prune: the base's and later ones stay (-want +got):\n%s", diff)
		}
		// Appends continue at the size; a commit elsewhere conflicts.
		if err := s.Commit(ctx, entries(3, 1), nil); !errors.Is(err, ledger.ErrConflict) {
			t.Fatalf("commit below the base: %v, want ErrConflict", err)
		}
		cp(t, s, 12, 1)
		if got := size(t, s); got != 13 {
			t.Fatalf("Size = %d, want 13", got)
		}
	})
	t.Run("PruneWholeLog", func(t *testing.T) {
		s, p := prunable(t)
		cp(t, s, 0, 4)
		if err := p.Prune(ctx, 4, []byte("b")); err != nil {
			t.Fatal(err)
		}
		if got := size(t, s); got != 4 {
			t.Fatalf("Size of a log pruned whole = %d, want 4", got)
		}
		if got := scanAll(t, s, 0); len(got) != 0 {
			t.Fatalf("Scan after pruning everything: %d records", len(got))
		}
		if c, ok, err := s.LatestCheckpoint(ctx); err != nil || !ok || c.Size != 4 {
			t.Fatalf("LatestCheckpoint = %+v %v %v, want the base's", c, ok, err)
		}
		cp(t, s, 4, 2)
		if diff := cmp.Diff(entries(4, 2), scanAll(t, s, 0)); diff != "" {
			t.Fatalf("records after the base (-want +got):\n%s", diff)
		}
	})
	t.Run("PruneIsIdempotent", func(t *testing.T) {
		s, p := prunable(t)
		cp(t, s, 0, 3)
		cp(t, s, 3, 3)
		for range 2 {
			if err := p.Prune(ctx, 3, []byte("b3")); err != nil {
				t.Fatal(err)
			}
		}
		// Below the base: nothing changes.
		if err := p.Prune(ctx, 1, []byte("older")); err != nil {
			t.Fatal(err)
		}
		if n, b, _, _ := p.Base(ctx); n != 3 || string(b) != "b3" {
			t.Fatalf("Base = %d %q, want 3 b3", n, b)
		}
		if err := p.Prune(ctx, 6, []byte("b6")); err != nil {
			t.Fatal(err)
		}
		if n, b, _, _ := p.Base(ctx); n != 6 || string(b) != "b6" {
			t.Fatalf("Base = %d %q, want 6 b6", n, b)
		}
	})
	t.Run("PruneRefusesWithoutCheckpoint", func(t *testing.T) {
		s, p := prunable(t)
		cp(t, s, 0, 4)
		if err := s.Commit(ctx, entries(4, 2), nil); err != nil {
			t.Fatal(err)
		}
		for _, at := range []uint64{2, 6, 9} {
			if err := p.Prune(ctx, at, []byte("x")); !errors.Is(err, ledger.ErrPruneNoCheckpoint) {
				t.Fatalf("Prune(%d): %v, want ErrPruneNoCheckpoint", at, err)
			}
		}
		if got := scanAll(t, s, 0); len(got) != 6 {
			t.Fatalf("a refused prune removed records: %d left", len(got))
		}
		if _, _, ok, _ := p.Base(ctx); ok {
			t.Fatal("a refused prune stored a base")
		}
	})
	t.Run("TrimStopsAtBase", func(t *testing.T) {
		s, p := prunable(t)
		cp(t, s, 0, 4)
		if err := p.Prune(ctx, 4, []byte("b")); err != nil {
			t.Fatal(err)
		}
		if err := s.Trim(ctx, 2); !errors.Is(err, ledger.ErrTrimCheckpointed) {
			t.Fatalf("Trim below the base: %v, want ErrTrimCheckpointed", err)
		}
	})
}
