package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// Under a steady stream of commits the WAL is checkpointed and then rewritten from its start,
// so its file stays bounded by about one checkpoint interval's frames. (A checkpoint racing
// with the commits never copied every frame, SQLite never restarted the WAL, and it grew by
// every commit: about 6 MB for the 1,000 commits below.)
func TestWALStaysBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.checkpointEvery = 64
	data := make([]byte, 700) // about one decision record
	for i := range 1000 {
		if err := s.Commit(context.Background(), []ledger.Entry{{Seq: uint64(i), Data: data}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	// 64 commits write about 90 frames of 4 KiB; allow several intervals' worth.
	if fi.Size() > 2<<20 {
		t.Errorf("WAL is %d bytes after 1,000 commits with a checkpoint every 64: it is not being rewritten", fi.Size())
	}
	if n, err := s.Size(context.Background()); err != nil || n != 1000 {
		t.Fatalf("size %d, %v; want 1000 records", n, err)
	}
}

// Under batching (hundreds of records a commit) the WAL stays within its documented bound: it
// is checkpointed by the bytes written, not only every checkpointEvery commits (1,024 commits
// of 500 records grew it to the whole ≈ 1 GB written between two checkpoints; under load the
// gateway's WAL sat at 27–30 MB).
func TestWALBoundedUnderBatching(t *testing.T) {
	s, path := batchedLedger(t, 500, 80) // 80 MB of records at 2 KB each
	defer s.Close()
	walWithinBound(t, path, "after 80 commits of 500 records (80 MB)")
}

// Pruning a large segment deletes in chunks, each followed by a WAL checkpoint: the WAL stays
// within its bound however many records go.
func TestWALBoundedWhilePruning(t *testing.T) {
	ctx := context.Background()
	s, path := batchedLedger(t, 1000, 30) // 60 MB
	defer s.Close()
	if err := s.Prune(ctx, 30000, []byte("base")); err != nil {
		t.Fatal(err)
	}
	walWithinBound(t, path, "after pruning 30,000 records (60 MB)")
	if n, err := s.Size(ctx); err != nil || n != 30000 {
		t.Fatalf("size after pruning everything: %d %v", n, err)
	}
}

// batchedLedger is a new ledger store with commits batches of batch 2,000-byte records, the
// last with a checkpoint of them all.
func batchedLedger(t *testing.T, batch, commits int) (*Ledger, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 2000)
	for c := range commits {
		recs := make([]ledger.Entry, batch)
		for i := range recs {
			recs[i] = ledger.Entry{Seq: uint64(c*batch + i), Data: data}
		}
		var cp *ledger.StoredCheckpoint
		if c == commits-1 {
			cp = &ledger.StoredCheckpoint{Size: uint64(batch * commits), Note: []byte("cp"), Frontier: []byte{}}
		}
		if err := s.Commit(context.Background(), recs, cp); err != nil {
			t.Fatal(err)
		}
	}
	return s, path
}

// walWithinBound fails the test when the WAL beside the database at path exceeds WALBound.
func walWithinBound(t *testing.T, path, when string) {
	t.Helper()
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > WALBound {
		t.Errorf("WAL is %d bytes %s, above its bound of %d", fi.Size(), when, WALBound)
	}
	t.Logf("WAL %d bytes %s", fi.Size(), when)
}
