package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// A relaxed commit is visible and survives a reopen; the writer goes back to synchronous=FULL
// for the commits after it; Sync checkpoints the WAL.
func TestLedgerCommitRelaxed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := openTestLedger(t, path)
	if err := s.CommitRelaxed(ctx, testEntries(0, 3), nil); err != nil {
		t.Fatal(err)
	}
	var sync int
	if err := s.w.conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if sync != 2 { // FULL
		t.Errorf("writer left at synchronous=%d after a relaxed commit, want 2 (FULL)", sync)
	}
	if err := s.Commit(ctx, testEntries(3, 2), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Size(ctx); err != nil || n != 5 {
		t.Fatalf("size %d, %v", n, err)
	}
	s.Close()
	s2 := openTestLedger(t, path)
	if n, err := s2.Size(ctx); err != nil || n != 5 {
		t.Errorf("after reopen: size %d, %v", n, err)
	}
}
