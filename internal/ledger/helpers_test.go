package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
)

// env is a ledger under test: its key directory, store and keys.
type env struct {
	dir  string
	st   ledger.Store
	keys *ledger.Keys
}

func newEnv(t testing.TB, st ledger.Store) *env {
	t.Helper()
	dir := t.TempDir()
	keys, err := ledger.GenerateKeys(dir, ledger.NewOrigin())
	if err != nil {
		t.Fatal(err)
	}
	if st == nil {
		st = memory.New()
	}
	return &env{dir: dir, st: st, keys: keys}
}

func (e *env) options(t testing.TB) ledger.Options {
	t.Helper()
	vs, _, err := e.keys.Verifiers()
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Options{Store: e.st, Signer: e.keys.Signer, Verifiers: vs, KeyDir: e.dir, HashKey: e.keys.HashKey}
}

func (e *env) open(t testing.TB, mod func(*ledger.Options)) *ledger.Ledger {
	t.Helper()
	o := e.options(t)
	if mod != nil {
		mod(&o)
	}
	l, err := ledger.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	return l
}

func (e *env) verify(t testing.TB, trusted ...[]byte) ledger.Report {
	t.Helper()
	rep, err := ledger.Verify(context.Background(), e.st, ledger.VerifyOptions{Keys: e.keys.Public, Trusted: trusted})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

// decision is a typical decision record.
func decision(i int) *ledger.Record {
	return &ledger.Record{
		Kind:       ledger.KindDecision,
		DecisionID: fmt.Sprintf("dec-%06d", i),
		RequestID:  fmt.Sprintf("req-%06d", i),
		Source:     "mcp",
		Agent:      &ledger.Principal{ID: "agent-billing", Verified: true, Method: "api_key"},
		User:       &ledger.Principal{ID: "alice@example.com", Method: "asserted"},
		Tool:       "db.query",
		Params:     json.RawMessage(fmt.Sprintf(`{"sql":"SELECT * FROM invoices WHERE id = %d","limit":10}`, i)),
		Policy: &ledger.Policy{Version: "v42", Rule: "allow-readonly-queries",
			Conditions: []ledger.Condition{{Expr: `tool == "db.query"`, Result: true}, {Expr: "threat < high", Result: true}}},
		PolicyVersion: "v42",
		Decision:      "allow",
		Enforcement:   "enforced",
		Anomalies:     []ledger.Anomaly{{Signal: "rate", Score: 0.12}},
		Time:          time.Date(2026, 11, 25, 12, 0, 0, i, time.UTC),
	}
}

func mustAppend(t testing.TB, l *ledger.Ledger, r *ledger.Record) uint64 {
	t.Helper()
	seq, err := l.Append(context.Background(), r)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return seq
}

func mustClose(t testing.TB, l *ledger.Ledger) {
	t.Helper()
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func records(t testing.TB, st ledger.Store) []*ledger.Record {
	t.Helper()
	var out []*ledger.Record
	err := st.Scan(context.Background(), 0, func(e ledger.Entry) error {
		r, err := ledger.ParseRecord(e.Data)
		if err != nil {
			return fmt.Errorf("record %d: %w", e.Seq, err)
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
