package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
)

// writeLedger makes a real ledger and the auditor's three files.
func writeLedger(t *testing.T) (dir string, recs [][]byte) {
	t.Helper()
	dir = t.TempDir()
	keys, err := ledger.GenerateKeys(filepath.Join(dir, "keys"), ledger.NewOrigin())
	if err != nil {
		t.Fatal(err)
	}
	vs, _, _ := keys.Verifiers()
	st := memory.New()
	l, err := ledger.Open(context.Background(), ledger.Options{Store: st, Signer: keys.Signer, Verifiers: vs})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 57 {
		if _, err := l.Append(context.Background(), &ledger.Record{Kind: ledger.KindDecision, Tool: "t", Decision: "allow", DecisionID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Scan(context.Background(), 0, func(e ledger.Entry) error {
		recs = append(recs, append([]byte(nil), e.Data...))
		return nil
	})
	cp, _, _ := st.LatestCheckpoint(context.Background())
	os.WriteFile(filepath.Join(dir, "checkpoint.txt"), cp.Note, 0o644)
	os.WriteFile(filepath.Join(dir, "ledger.pub"), []byte(strings.Join(keys.Public, "\n")+"\n"), 0o644)
	writeRecords(t, dir, recs)
	return dir, recs
}

func writeRecords(t *testing.T, dir string, recs [][]byte) {
	var b bytes.Buffer
	for _, r := range recs {
		b.Write(r)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(dir, "records.jsonl"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func args(dir string) []string {
	return []string{"-records", filepath.Join(dir, "records.jsonl"), "-checkpoint", filepath.Join(dir, "checkpoint.txt"), "-pubkey", filepath.Join(dir, "ledger.pub")}
}

func TestIndependentVerifierAcceptsARealLedger(t *testing.T) {
	dir, _ := writeLedger(t)
	var out bytes.Buffer
	if err := run(args(dir), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "ok: 59 records") {
		t.Errorf("output %q", out.String())
	}
}

func TestIndependentVerifierRejectsTampering(t *testing.T) {
	tests := map[string]func(dir string, recs [][]byte){
		"changed byte": func(dir string, recs [][]byte) {
			recs[20] = bytes.Replace(recs[20], []byte(`"allow"`), []byte(`"allox"`), 1)
			writeRecords(t, dir, recs)
		},
		"changed last record": func(dir string, recs [][]byte) {
			recs[58] = bytes.Replace(recs[58], []byte(`shutdown`), []byte(`shutdowN`), 1)
			writeRecords(t, dir, recs)
		},
		"deleted record": func(dir string, recs [][]byte) {
			writeRecords(t, dir, append(recs[:10:10], recs[11:]...))
		},
		"truncated": func(dir string, recs [][]byte) { writeRecords(t, dir, recs[:40]) },
		"foreign key": func(dir string, _ [][]byte) {
			other, _ := ledger.GenerateKeys(filepath.Join(dir, "other"), "someone.else/log")
			os.WriteFile(filepath.Join(dir, "ledger.pub"), []byte(other.Public[0]+"\n"), 0o644)
		},
	}
	for name, tamper := range tests {
		t.Run(name, func(t *testing.T) {
			dir, recs := writeLedger(t)
			tamper(dir, recs)
			if err := run(args(dir), &bytes.Buffer{}); err == nil {
				t.Error("tampered ledger accepted")
			}
		})
	}
}
