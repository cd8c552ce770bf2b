package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

func TestRecoveryAfterUncleanStop(t *testing.T) {
	ms := memory.New()
	e := newEnv(t, ms)
	l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 10 })
	for i := range 15 {
		mustAppend(t, l, decision(i))
	}
	// No Close: the process "died". Records 10..15 are after the last checkpoint.
	recs, _ := ms.Raw()
	before := len(*recs)
	l2 := e.open(t, nil)
	mustClose(t, l2)
	rs := records(t, e.st)
	if rs[before].Kind != ledger.KindRecovery || rs[before].Recovery.Trimmed != 0 || rs[before].Recovery.FoundSize != uint64(before) {
		t.Errorf("record after the crash = %+v, want a recovery record with nothing trimmed", rs[before])
	}
	if rs[before+1].Kind != ledger.KindStartup {
		t.Errorf("record %d is %s, want startup", before+1, rs[before+1].Kind)
	}
	if rep := e.verify(t); !rep.Intact {
		t.Errorf("verify after recovery: %+v", rep)
	}
	_ = l // the abandoned ledger's writer is idle; it is not closed on purpose
}

func TestRecoveryTrimsTornLastRecord(t *testing.T) {
	ms := memory.New()
	e := newEnv(t, ms)
	l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 10 })
	for i := range 14 {
		mustAppend(t, l, decision(i))
	}
	recs, _ := ms.Raw()
	n := len(*recs)
	last := (*recs)[n-1]
	(*recs)[n-1] = last[:len(last)/2] // torn write
	l2 := e.open(t, nil)
	mustClose(t, l2)
	rs := records(t, e.st)
	rec := rs[n-1]
	if rec.Kind != ledger.KindRecovery || rec.Recovery.Trimmed != 1 || rec.Recovery.TrimmedFrom != uint64(n-1) {
		t.Fatalf("record %d = %+v, want a recovery record trimming 1 from %d", n-1, rec, n-1)
	}
	if rep := e.verify(t); !rep.Intact {
		t.Errorf("verify after trimming: %+v", rep)
	}
}

func TestRecoveryRefusesOtherDamage(t *testing.T) {
	tests := map[string]func(recs *[][]byte, cps *[]ledger.StoredCheckpoint){
		"damaged record before the last": func(recs *[][]byte, _ *[]ledger.StoredCheckpoint) {
			r := (*recs)[len(*recs)-3]
			(*recs)[len(*recs)-3] = r[:len(r)-5]
		},
		"records removed below the checkpoint": func(recs *[][]byte, _ *[]ledger.StoredCheckpoint) {
			*recs = (*recs)[:5]
		},
		"checkpoint not signed by the ledger's key": func(_ *[][]byte, cps *[]ledger.StoredCheckpoint) {
			c := &(*cps)[len(*cps)-1]
			c.Note[len(c.Note)-3] ^= 1
		},
		"tree state does not match the signed root": func(_ *[][]byte, cps *[]ledger.StoredCheckpoint) {
			c := &(*cps)[len(*cps)-1]
			c.Frontier[0] ^= 1
		},
	}
	for name, damage := range tests {
		t.Run(name, func(t *testing.T) {
			ms := memory.New()
			e := newEnv(t, ms)
			l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 10 })
			for i := range 14 {
				mustAppend(t, l, decision(i))
			}
			damage(ms.Raw())
			_, err := ledger.Open(context.Background(), e.options(t))
			if !errors.Is(err, ledger.ErrInconsistent) {
				t.Errorf("open = %v, want ErrInconsistent", err)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t, nil)
	firstKeys := append([]string(nil), e.keys.Public...)
	l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 10 })
	for i := range 12 {
		mustAppend(t, l, decision(i))
	}
	newKey, err := l.RotateKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		mustAppend(t, l, decision(i))
	}
	mustClose(t, l)
	keys, err := ledger.LoadKeys(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.Public) != 2 || keys.Public[1] != newKey {
		t.Fatalf("public keys after rotation = %v, want the old and %s", keys.Public, newKey)
	}
	rot := 0
	for _, r := range records(t, e.st) {
		if r.Kind == ledger.KindKeyRotation {
			rot++
			if r.KeyRotation.OldKey != firstKeys[0] || r.KeyRotation.NewKey != newKey {
				t.Errorf("rotation record = %+v", r.KeyRotation)
			}
		}
	}
	if rot != 1 {
		t.Fatalf("%d key_rotation records, want 1", rot)
	}
	for name, ks := range map[string][]string{"all keys": keys.Public, "only the first key (trust follows the co-signed rotation)": firstKeys} {
		rep, err := ledger.Verify(context.Background(), e.st, ledger.VerifyOptions{Keys: ks})
		if err != nil || !rep.Intact {
			t.Errorf("verify with %s: %+v, %v", name, rep, err)
		}
	}
	// A key the auditor never trusted, that no trusted key vouched for, is foreign.
	rep, err := ledger.Verify(context.Background(), e.st, ledger.VerifyOptions{Keys: []string{newKey}})
	if err != nil || rep.Intact || rep.Problem != ledger.ProblemForeignSignature {
		t.Errorf("verify with only the new key = %+v, %v; want foreign signature on the old checkpoints", rep, err)
	}
	// The reopened ledger signs with the new key.
	vs, _, _ := keys.Verifiers()
	l2, err := ledger.Open(context.Background(), ledger.Options{Store: e.st, Signer: keys.Signer, Verifiers: vs})
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, l2)
	if rep := e.verify(t); !rep.Intact {
		t.Errorf("after reopening with the new key: %+v", rep)
	}
}

func TestCleanRestartWritesNoRecovery(t *testing.T) {
	e := newEnv(t, nil)
	l := e.open(t, nil)
	mustAppend(t, l, decision(1))
	mustClose(t, l)
	l2 := e.open(t, nil)
	mustClose(t, l2)
	var kinds []ledger.Kind
	for _, r := range records(t, e.st) {
		kinds = append(kinds, r.Kind)
	}
	want := []ledger.Kind{ledger.KindStartup, ledger.KindDecision, ledger.KindShutdown, ledger.KindStartup, ledger.KindShutdown}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("kinds after a clean restart (-want +got):\n%s", diff)
	}
}

// The same on the real store: a torn last row in SQLite is trimmed with a recovery record; a
// damaged row before it refuses the start.
func TestRecoveryOnSQLite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fromEnd int // which row from the end to cut
		refuse  bool
	}{{"torn last row", 1, false}, {"damaged earlier row", 3, true}} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := sqlite.OpenLedger(filepath.Join(t.TempDir(), "ledger.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			e := newEnv(t, st)
			l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 10; o.CheckpointInterval = time.Hour })
			for i := range 15 {
				mustAppend(t, l, decision(i))
			}
			size, _ := st.Size(context.Background())
			seq := int64(size) - int64(tc.fromEnd)
			if _, err := st.DB().Exec("UPDATE ledger_records SET data = substr(data, 1, length(data) / 2) WHERE seq = ?", seq); err != nil {
				t.Fatal(err)
			}
			_, err = ledger.Open(context.Background(), e.options(t))
			if tc.refuse {
				if !errors.Is(err, ledger.ErrInconsistent) || !strings.Contains(err.Error(), fmt.Sprintf("record %d", seq)) {
					t.Fatalf("open = %v, want ErrInconsistent naming record %d", err, seq)
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			rs := records(t, st)
			if r := rs[seq]; r.Kind != ledger.KindRecovery || r.Recovery.TrimmedFrom != uint64(seq) {
				t.Errorf("record %d = %+v, want the recovery record", seq, r)
			}
		})
	}
}
