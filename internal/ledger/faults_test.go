package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// gateStore blocks commits while block is set, until release is closed.
type gateStore struct {
	ledger.Store
	block   atomic.Bool
	release chan struct{}
}

func (g *gateStore) Commit(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	if g.block.Load() {
		<-g.release
	}
	return g.Store.Commit(ctx, recs, cp)
}

// fault modes of faultStore.
const (
	faultNone        = iota
	faultWrite       // the write fails: nothing persists (ENOSPC, EIO)
	faultSync        // the data reaches the store but the sync reports failure
	faultWriteAndAll // every call fails, reads too (the device is gone)
)

// faultStore injects write and sync failures into a real store.
type faultStore struct {
	ledger.Store
	mode atomic.Int32
	err  error
}

func (f *faultStore) Commit(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	switch f.mode.Load() {
	case faultWrite, faultWriteAndAll:
		return fmt.Errorf("fault store: write: %w", f.err)
	case faultSync:
		if err := f.Store.Commit(ctx, recs, cp); err != nil {
			return err
		}
		return fmt.Errorf("fault store: fsync: %w", f.err)
	}
	return f.Store.Commit(ctx, recs, cp)
}

func (f *faultStore) Size(ctx context.Context) (uint64, error) {
	if f.mode.Load() == faultWriteAndAll {
		return 0, fmt.Errorf("fault store: read: %w", f.err)
	}
	return f.Store.Size(ctx)
}

func (f *faultStore) LatestCheckpoint(ctx context.Context) (ledger.StoredCheckpoint, bool, error) {
	if f.mode.Load() == faultWriteAndAll {
		return ledger.StoredCheckpoint{}, false, fmt.Errorf("fault store: read: %w", f.err)
	}
	return f.Store.LatestCheckpoint(ctx)
}

type acked struct {
	mu  sync.Mutex
	ids map[uint64]string
}

func (a *acked) add(seq uint64, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ids == nil {
		a.ids = map[uint64]string{}
	}
	if old, dup := a.ids[seq]; dup {
		panic(fmt.Sprintf("seq %d acknowledged twice (%s, %s)", seq, old, id))
	}
	a.ids[seq] = id
}

// appendMany appends n records from 64 goroutines and returns how many failed.
func appendMany(t *testing.T, l *ledger.Ledger, a *acked, tag string, n int) (failed int64) {
	t.Helper()
	var wg sync.WaitGroup
	var fails atomic.Int64
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 64 {
				r := decision(i)
				r.DecisionID = fmt.Sprintf("%s-%d", tag, i)
				seq, err := l.Append(context.Background(), r)
				if err != nil {
					if !errors.Is(err, ledger.ErrNotDurable) {
						t.Errorf("append failed with %v, want ErrNotDurable", err)
					}
					fails.Add(1)
					continue
				}
				a.add(seq, r.DecisionID)
			}
		}()
	}
	wg.Wait()
	return fails.Load()
}

func checkAcked(t *testing.T, st ledger.Store, a *acked) {
	t.Helper()
	rs := records(t, st)
	for seq, id := range a.ids {
		if seq >= uint64(len(rs)) || rs[seq].DecisionID != id {
			t.Fatalf("acknowledged record %d (%s) is not in the log", seq, id)
		}
	}
}

func TestFaultyStoreNeverAcknowledges(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode int32
		err  error
	}{
		{"write fails (disk full)", faultWrite, syscall.ENOSPC},
		{"sync fails after the write", faultSync, syscall.EIO},
		{"device gone (reads fail too)", faultWriteAndAll, syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sq, err := sqlite.OpenLedger(filepath.Join(t.TempDir(), "ledger.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer sq.Close()
			fs := &faultStore{Store: sq, err: tc.err}
			e := newEnv(t, fs)
			l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 100 })
			var a acked
			if f := appendMany(t, l, &a, "before", 300); f != 0 {
				t.Fatalf("%d failures before the fault", f)
			}
			fs.mode.Store(tc.mode)
			before := len(a.ids)
			if f := appendMany(t, l, &a, "during", 200); f != 200 {
				t.Errorf("%d of 200 appends failed during the fault, want all", f)
			}
			if len(a.ids) != before {
				t.Errorf("%d records acknowledged during the fault", len(a.ids)-before)
			}
			if l.Err() == nil || l.Stats().Failures == 0 {
				t.Errorf("the failure is not visible: Err %v, stats %+v", l.Err(), l.Stats())
			}
			if !errors.Is(l.Err(), tc.err) {
				t.Errorf("Err() = %v, want it to wrap %v", l.Err(), tc.err)
			}
			// The stored log (read beside the faulty device path) stays verifiable.
			rep, err := ledger.Verify(context.Background(), sq, ledger.VerifyOptions{Keys: e.keys.Public})
			if err != nil || !rep.Intact {
				t.Fatalf("not verifiable during the fault: %+v, %v", rep, err)
			}
			fs.mode.Store(faultNone)
			if f := appendMany(t, l, &a, "after", 300); f != 0 {
				t.Errorf("%d failures after the fault cleared", f)
			}
			if l.Err() != nil {
				t.Errorf("Err() = %v after recovery, want nil", l.Err())
			}
			mustClose(t, l)
			if rep := e.verify(t); !rep.Intact {
				t.Fatalf("verify after the fault: %+v", rep)
			}
			checkAcked(t, sq, &a)
		})
	}
}

// A real full disk: a small tmpfs holding the SQLite file fills up; no record is acknowledged
// that is not durable, and appends succeed again once space is freed.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; TestFaultyStoreNeverAcknowledges covers ENOSPC through the fault store")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s); TestFaultyStoreNeverAcknowledges covers ENOSPC through the fault store", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	sq, err := sqlite.OpenLedger(filepath.Join(mnt, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	e := newEnv(t, sq)
	l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 100 })
	var a acked
	if f := appendMany(t, l, &a, "before", 100); f != 0 {
		t.Fatalf("%d failures before the disk filled", f)
	}
	// Fill the disk with ballast, leaving (almost) nothing.
	ballast := filepath.Join(mnt, "ballast")
	bf, err := os.Create(ballast)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := bf.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	bf.Close()
	var failed int64
	for round := 0; round < 20 && failed == 0; round++ {
		failed += appendMany(t, l, &a, fmt.Sprintf("full%d", round), 256)
	}
	if failed == 0 {
		t.Fatal("no append failed on a full disk")
	}
	if err := l.Err(); err == nil {
		t.Error("the failure is not visible in Err()")
	}
	t.Logf("%d appends failed on the full disk: %v", failed, l.Err())
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if f := appendMany(t, l, &a, "after", 300); f != 0 {
		t.Errorf("%d failures after space came back", f)
	}
	mustClose(t, l)
	if rep := e.verify(t); !rep.Intact {
		t.Fatalf("verify after the disk filled: %+v", rep)
	}
	checkAcked(t, sq, &a)
}

// panicStore panics in Commit while armed.
type panicStore struct {
	ledger.Store
	armed atomic.Bool
}

func (p *panicStore) Commit(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	if p.armed.Load() {
		panic("store bug")
	}
	return p.Store.Commit(ctx, recs, cp)
}

// A store that panics fails the batch instead of taking the process down or — since a caller
// may be the one committing — leaving the writer's seat taken: the record is refused, later
// appends succeed and the log verifies.
func TestStorePanicFailsTheBatch(t *testing.T) {
	e := newEnv(t, nil)
	ps := &panicStore{Store: e.st}
	e.st = ps
	l := e.open(t, nil)
	ps.armed.Store(true)
	if _, err := l.Append(context.Background(), decision(1)); !errors.Is(err, ledger.ErrNotDurable) {
		t.Fatalf("append through a panicking store: %v, want ErrNotDurable", err)
	}
	if l.Err() == nil {
		t.Error("the failure is not visible in Err()")
	}
	ps.armed.Store(false)
	for i := range 20 {
		if _, err := l.Append(context.Background(), decision(2+i)); err != nil {
			t.Fatalf("append after the panic: %v", err)
		}
	}
	mustClose(t, l)
	if rep := e.verify(t); !rep.Intact || rep.RecordsChecked != 22 {
		t.Errorf("verify = %+v, want intact with 22 records (startup, 20, shutdown)", rep)
	}
}
