package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// startStop runs the gateway's real start path on dir and stops it again.
func startStop(t *testing.T, dir, cfgPath string) error {
	t.Helper()
	cfg := loadConfig(t, cfgPath)
	a, err := Open(context.Background(), cfg, cfgPath, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	a.Close(context.Background())
	return nil
}

func loadConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// witnessSize reads the size of the checkpoint in the data directory's witness.
func witnessSize(t *testing.T, dir string) (uint64, []byte) {
	t.Helper()
	w, err := os.ReadFile(filepath.Join(dir, ledger.WitnessFile))
	if err != nil {
		t.Fatalf("witness: %v", err)
	}
	c, err := ledger.ParseCheckpoint(string(w[:bytes.LastIndex(w, []byte("\n\n"))+1]))
	if err != nil {
		t.Fatal(err)
	}
	return c.Size, w
}

// rollBack cuts ledger.db back to its first n records and the checkpoints that cover no more,
// through SQL, as someone with write access to the file but not the key could.
func rollBack(t *testing.T, dir string, n uint64) {
	t.Helper()
	st, err := sqlite.OpenLedger(filepath.Join(dir, LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, q := range []string{`DELETE FROM ledger_records WHERE seq >= ?`, `DELETE FROM ledger_checkpoints WHERE size > ?`} {
		if _, err := st.DB().Exec(q, n); err != nil {
			t.Fatal(err)
		}
	}
}

// The data directory keeps the latest checkpoint the gateway signed (ledger.witness, beside
// ledger.key). A ledger.db rolled back behind it, or rolled back and continued differently,
// refuses the start.
func TestOpenRefusesLedgerBehindOrDisagreeingWitness(t *testing.T) {
	dir, cfgPath, _, _ := initDefault(t)
	for range 3 {
		if err := startStop(t, dir, cfgPath); err != nil {
			t.Fatal(err)
		}
	}
	if err := startStop(t, dir, cfgPath); err != nil {
		t.Fatalf("clean restart with the witness: %v", err)
	}
	wsize, w := witnessSize(t, dir)

	// Behind: the last run's records and checkpoints removed.
	rollBack(t, dir, wsize-3)
	err := startStop(t, dir, cfgPath)
	if err == nil || !strings.Contains(err.Error(), ledger.WitnessFile) || !strings.Contains(err.Error(), "behind") {
		t.Fatalf("start on a ledger behind the witness = %v, want a refusal naming the witness", err)
	}

	// Disagrees: the rolled-back ledger continued (the witness moved aside), then put back.
	os.Remove(filepath.Join(dir, ledger.WitnessFile))
	for range 3 {
		if err := startStop(t, dir, cfgPath); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := witnessSize(t, dir); n <= wsize {
		t.Fatalf("the continued ledger has %d records, want more than %d", n, wsize)
	}
	if err := os.WriteFile(filepath.Join(dir, ledger.WitnessFile), w, 0o644); err != nil {
		t.Fatal(err)
	}
	err = startStop(t, dir, cfgPath)
	if err == nil || !strings.Contains(err.Error(), ledger.WitnessFile) || !strings.Contains(err.Error(), "disagree") {
		t.Fatalf("start on a ledger that disagrees with the witness = %v, want a refusal naming the witness", err)
	}
}
