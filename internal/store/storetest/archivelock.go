package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// RunArchiveLock is the ledger.ArchiveLocker contract on two handles of one ledger (two
// replicas, or a gateway and `audit archive`): two archivers started together, each into its own
// directory, never write overlapping archives nor prune the same records twice — one archives,
// the other is told the lock is busy — and the archives with the live log verify as one history.
// A holder of the lock keeps the other out, named, until it releases it.
func RunArchiveLock(t *testing.T, newPair func(t *testing.T) (a, b ledger.Store)) {
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
	l, err := ledger.Open(ctx, ledger.Options{Store: sa, Signer: keys.Signer, Verifiers: vs, CheckpointRecords: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 600 {
		if _, err := l.Append(ctx, &ledger.Record{Kind: ledger.KindDecision, Decision: "allow", DecisionID: fmt.Sprint(i), Tool: "db.query"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	size, err := sa.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opts := ledger.VerifyOptions{Keys: keys.Public}
	dirs := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")}

	// Both archivers at once, each with its own directory, segments of 20 records.
	start := make(chan struct{})
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, st := range []ledger.Store{sa, sb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = ledger.ApplyRetention(ctx, st, dirs[i], ledger.Retention{}, size, 20, time.Now(), opts)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, ledger.ErrArchiveBusy) {
			t.Errorf("archiver %d: %v", i, err)
		}
	}
	var all []*ledger.Archive
	for _, d := range dirs {
		as, err := ledger.ListArchives(d)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, as...)
	}
	slices.SortFunc(all, func(x, y *ledger.Archive) int { return cmp.Compare(x.From(), y.From()) })
	next := uint64(0)
	for _, a := range all {
		if a.From() != next {
			t.Errorf("%s: from %d, want %d (archives overlap or leave a gap)", a.Path, a.From(), next)
		}
		next = max(next, a.To())
	}
	base, _, _, err := sa.(ledger.Pruner).Base(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next != base || base == 0 {
		t.Errorf("archives end at %d, the live log begins at %d", next, base)
	}
	rep, err := ledger.VerifyArchived(ctx, all, sb, opts)
	if err != nil || !rep.Intact || rep.Log.RecordsChecked != size {
		t.Errorf("verify archives + live: %+v, %v (want %d records)", rep.Log, err, size)
	}

	// A holder keeps the other handle out, named where the store can tell; released, it is free.
	unlock, err := sa.(ledger.ArchiveLocker).TryLockArchive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	released := false
	t.Cleanup(func() {
		if !released {
			unlock() // a failed check below must not leave the lock's session in the pool
		}
	})
	_, err = ledger.ApplyRetention(ctx, sb, dirs[1], ledger.Retention{}, size, 20, time.Now(), opts)
	var busy *ledger.ArchiveBusyError
	if !errors.As(err, &busy) {
		t.Fatalf("archive while the other handle holds the lock: %v, want busy", err)
	}
	t.Logf("busy: %v", err)
	released = true
	unlock()
	unlock2, err := sb.(ledger.ArchiveLocker).TryLockArchive(ctx)
	if err != nil {
		t.Fatalf("after the release: %v", err)
	}
	unlock2()
}
