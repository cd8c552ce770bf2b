package storetest

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// RunLedgerRecovery runs the ledger's start-up checks on a store: an unclean stop is explained
// by a recovery record on every store (shared ones too), and a store behind the gateway's
// witness — the latest checkpoint it signed, kept beside its key — is refused. newStore returns
// an empty store.
func RunLedgerRecovery(t *testing.T, newStore func(t *testing.T) ledger.Store) {
	ctx := context.Background()
	open := func(t *testing.T, st ledger.Store, dir string, keys *ledger.Keys) (*ledger.Ledger, error) {
		vs, _, err := keys.Verifiers()
		if err != nil {
			t.Fatal(err)
		}
		return ledger.Open(ctx, ledger.Options{Store: st, Signer: keys.Signer, Verifiers: vs,
			WitnessFile: filepath.Join(dir, ledger.WitnessFile), CheckpointRecords: 10,
			// No time-based checkpoint: the abandoned ledger below must leave its tail unsigned.
			CheckpointInterval: time.Hour})
	}
	setup := func(t *testing.T) (string, *ledger.Keys) {
		dir := t.TempDir()
		keys, err := ledger.GenerateKeys(dir, ledger.NewOrigin())
		if err != nil {
			t.Fatal(err)
		}
		return dir, keys
	}
	appendN := func(t *testing.T, l *ledger.Ledger, n int) {
		for range n {
			if _, err := l.Append(ctx, &ledger.Record{Kind: ledger.KindDecision, Decision: "allow", Tool: "db.query"}); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("UncleanStopWritesRecoveryRecord", func(t *testing.T) {
		st := newStore(t)
		dir, keys := setup(t)
		l, err := open(t, st, dir, keys)
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 5) // no Close: the process died with five records after the checkpoint
		before := size(t, st)
		l2, err := open(t, st, dir, keys)
		if err != nil {
			t.Fatalf("restart after an unclean stop: %v", err)
		}
		if err := l2.Close(ctx); err != nil {
			t.Fatal(err)
		}
		var found *ledger.Record
		if err := st.Scan(ctx, before, func(e ledger.Entry) error {
			r, err := ledger.ParseRecord(e.Data)
			if err != nil {
				return err
			}
			if r.Kind == ledger.KindRecovery && found == nil {
				found = r
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if found == nil || found.Recovery == nil || found.Recovery.FoundSize != before {
			t.Fatalf("after an unclean stop with %d records: recovery record %+v, want one that found them", before, found)
		}
		rep, err := ledger.Verify(ctx, st, ledger.VerifyOptions{Keys: keys.Public})
		if err != nil || !rep.Intact {
			t.Errorf("verify after recovery: %+v, %v", rep, err)
		}
	})

	t.Run("StoreBehindWitnessRefused", func(t *testing.T) {
		st := newStore(t)
		dir, keys := setup(t)
		l, err := open(t, st, dir, keys)
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 25)
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		// The same keys and witness on another store (a restored backup, an emptied table).
		_, err = open(t, newStore(t), dir, keys)
		if !errors.Is(err, ledger.ErrInconsistent) || !strings.Contains(err.Error(), ledger.WitnessFile) {
			t.Fatalf("open on a store behind the witness = %v, want ErrInconsistent naming the witness", err)
		}
		// The store it belongs to still opens.
		l, err = open(t, st, dir, keys)
		if err != nil {
			t.Fatalf("reopen on its own store: %v", err)
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
