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
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const batch, commits = 500, 80 // 80 MB of records at 2 KB each
	data := make([]byte, 2000)
	for c := range commits {
		recs := make([]ledger.Entry, batch)
		for i := range recs {
			recs[i] = ledger.Entry{Seq: uint64(c*batch + i), Data: data}
		}
		if err := s.Commit(context.Background(), recs, nil); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > WALBound {
		t.Errorf("WAL is %d bytes after %d commits of %d records, above its bound of %d", fi.Size(), commits, batch, WALBound)
	}
	t.Logf("WAL %d bytes after %d MB of records", fi.Size(), commits*batch*len(data)>>20)
}

// Pruning a large segment deletes in chunks, each followed by a WAL checkpoint: the WAL stays
// within its bound however many records go.
func TestWALBoundedWhilePruning(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const batch, commits = 1000, 30 // 60 MB of records at 2 KB each
	data := make([]byte, 2000)
	for c := range commits {
		recs := make([]ledger.Entry, batch)
		for i := range recs {
			recs[i] = ledger.Entry{Seq: uint64(c*batch + i), Data: data}
		}
		var cp *ledger.StoredCheckpoint
		if c == commits-1 {
			cp = &ledger.StoredCheckpoint{Size: batch * commits, Note: []byte("cp"), Frontier: []byte{}}
		}
		if err := s.Commit(ctx, recs, cp); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Prune(ctx, batch*commits, []byte("base")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > WALBound {
		t.Errorf("WAL is %d bytes after pruning %d records, above its bound of %d", fi.Size(), batch*commits, WALBound)
	}
	if n, err := s.Size(ctx); err != nil || n != batch*commits {
		t.Fatalf("size after pruning everything: %d %v", n, err)
	}
	t.Logf("WAL %d bytes after pruning %d MB of records", fi.Size(), batch*commits*len(data)>>20)
}
