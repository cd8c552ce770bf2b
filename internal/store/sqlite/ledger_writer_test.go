package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

func openTestLedger(t *testing.T, path string) *Ledger {
	t.Helper()
	s, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testEntries(from, n int) []ledger.Entry {
	out := make([]ledger.Entry, n)
	for i := range out {
		seq := from + i
		out[i] = ledger.Entry{Seq: uint64(seq), Data: fmt.Appendf(nil, "record %d \x00\xff", seq)}
	}
	return out
}

// checkRecords asserts the store holds exactly records 0..n-1 as testEntries made them.
func checkRecords(t *testing.T, s *Ledger, n int) {
	t.Helper()
	ctx := context.Background()
	if got, err := s.Size(ctx); err != nil || got != uint64(n) {
		t.Fatalf("Size = %d, %v; want %d", got, err, n)
	}
	next := 0
	err := s.Scan(ctx, 0, func(e ledger.Entry) error {
		want := testEntries(next, 1)[0]
		if e.Seq != want.Seq || string(e.Data) != string(want.Data) {
			return fmt.Errorf("record %d: got seq %d %q, want %q", next, e.Seq, e.Data, want.Data)
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != n {
		t.Fatalf("scanned %d records, want %d", next, n)
	}
}

// Batches of every shape the chunked INSERT splits differently (one statement, several, the
// largest chunk repeated) land whole and in order.
func TestLedgerCommitBatchSizes(t *testing.T) {
	s := openTestLedger(t, filepath.Join(t.TempDir(), "ledger.db"))
	n := 0
	for _, k := range []int{1, 2, 3, 7, 64, 255, 256, 257, 300, 1000, 1} {
		if err := s.Commit(context.Background(), testEntries(n, k), nil); err != nil {
			t.Fatalf("commit of %d records at %d: %v", k, n, err)
		}
		n += k
	}
	checkRecords(t, s, n)
}

// A batch that fails part-way through its inserts (here in its second INSERT statement) or
// after them leaves nothing behind, and the next commit on the same connection works.
func TestLedgerCommitFailedBatchLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := openTestLedger(t, filepath.Join(t.TempDir(), "ledger.db"))
	if err := s.Commit(ctx, testEntries(0, 3), nil); err != nil {
		t.Fatal(err)
	}
	// Records 3..258 go in the first statement (256 records), 259.. in the next ones.
	if _, err := s.DB().Exec(`CREATE TRIGGER fail_insert BEFORE INSERT ON ledger_records
		WHEN NEW.seq = 262 BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, testEntries(3, 300), nil); err == nil {
		t.Fatal("commit through a failing insert succeeded")
	}
	checkRecords(t, s, 3)

	// Records inserted, then a checkpoint the store refuses: all of it rolled back.
	cp := &ledger.StoredCheckpoint{Size: 9, Note: []byte("n\n"), Frontier: []byte{1}}
	if err := s.Commit(ctx, testEntries(3, 2), cp); err == nil {
		t.Fatal("a checkpoint beyond the records was accepted")
	}
	checkRecords(t, s, 3)
	if _, ok, err := s.LatestCheckpoint(ctx); err != nil || ok {
		t.Fatalf("LatestCheckpoint after the failed commit: ok %v, %v; want none", ok, err)
	}

	// The schema changed under the prepared statements (trigger dropped); SQLite re-prepares them.
	if _, err := s.DB().Exec(`DROP TRIGGER fail_insert`); err != nil {
		t.Fatal(err)
	}
	cp.Size = 303
	if err := s.Commit(ctx, testEntries(3, 300), cp); err != nil {
		t.Fatalf("commit after the failures: %v", err)
	}
	checkRecords(t, s, 303)
}

// The size is read from the database at every commit, not remembered: records removed or
// added through another connection are seen by the next commit.
func TestLedgerCommitSeesOtherConnections(t *testing.T) {
	ctx := context.Background()
	s := openTestLedger(t, filepath.Join(t.TempDir(), "ledger.db"))
	if err := s.Commit(ctx, testEntries(0, 5), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec("DELETE FROM ledger_records WHERE seq >= 3"); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, testEntries(5, 1), nil); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("commit at the old size: %v, want ErrConflict", err)
	}
	if err := s.Commit(ctx, testEntries(3, 2), nil); err != nil {
		t.Fatalf("commit at the size another connection left: %v", err)
	}
	checkRecords(t, s, 5)
}

// A reopened store prepares its statements afresh and continues where the file ends.
func TestLedgerCommitAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	n := 0
	for round, k := range []int{1, 64, 300, 2} {
		s, err := OpenLedger(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, testEntries(n+1, k), nil); !errors.Is(err, ledger.ErrConflict) {
			t.Errorf("round %d: commit past the end: %v, want ErrConflict", round, err)
		}
		if err := s.Commit(ctx, testEntries(n, k), nil); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		n += k
		if err := s.Commit(ctx, testEntries(n, k), nil); err != nil {
			t.Fatalf("round %d, second commit: %v", round, err)
		}
		n += k
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	checkRecords(t, openTestLedger(t, path), n)
}

// While another connection holds the write lock a commit waits for it, until its context
// ends (promptly, not after the 10 s lock timeout) or the lock is released.
func TestLedgerCommitWaitsForWriteLock(t *testing.T) {
	ctx := context.Background()
	s := openTestLedger(t, filepath.Join(t.TempDir(), "ledger.db"))
	if err := s.Commit(ctx, testEntries(0, 1), nil); err != nil {
		t.Fatal(err)
	}
	other, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err = s.Commit(short, testEntries(1, 1), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("commit while the lock is held: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("commit gave up after %v, want about its 50 ms context", d)
	}

	released := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, err := other.ExecContext(ctx, "COMMIT")
		released <- err
	}()
	if err := s.Commit(ctx, testEntries(1, 1), nil); err != nil {
		t.Fatalf("commit after the lock is released: %v", err)
	}
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	checkRecords(t, s, 2)
}

// A commit whose context has already ended writes nothing.
func TestLedgerCommitEndedContext(t *testing.T) {
	s := openTestLedger(t, filepath.Join(t.TempDir(), "ledger.db"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Commit(ctx, testEntries(0, 3), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("commit with a canceled context: %v, want Canceled", err)
	}
	checkRecords(t, s, 0)
	if err := s.Commit(context.Background(), testEntries(0, 3), nil); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, s, 3)
}
