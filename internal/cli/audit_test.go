package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/ledger/ledgertest"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// newAuditData creates keys with `audit keygen` and a closed ledger of n decisions.
func newAuditData(t *testing.T, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if code, out, errs := run(t, "", "audit", "keygen", "--data", dir); code != exitOK || !strings.HasPrefix(out, "portcullis.ledger/") {
		t.Fatalf("keygen: %d %q %q", code, out, errs)
	}
	appendDecisions(t, dir, n, 0)
	return dir
}

// openDataLedger opens the SQLite ledger of the data directory dir with its keys, for writing;
// close the store after the ledger.
func openDataLedger(tb testing.TB, dir string, checkpointRecords int) (*ledger.Ledger, *sqlite.Ledger) {
	tb.Helper()
	keys, err := ledger.LoadKeys(dir)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := sqlite.OpenLedger(filepath.Join(dir, LedgerDBFile))
	if err != nil {
		tb.Fatal(err)
	}
	return ledgertest.Open(tb, st, keys, ledger.Options{CheckpointRecords: checkpointRecords}), st
}

func appendDecisions(t *testing.T, dir string, n, offset int) {
	t.Helper()
	l, st := openDataLedger(t, dir, 10)
	defer st.Close()
	for i := range n {
		agent, dec := "agent-a", "allow"
		if i%3 == 0 {
			agent, dec = "agent-b", "deny"
		}
		_, err := l.Append(context.Background(), &ledger.Record{
			Kind: ledger.KindDecision, DecisionID: fmt.Sprintf("d%d", offset+i), Tool: "fs.read", Decision: dec,
			Agent:  &ledger.Principal{ID: agent, Verified: true},
			Params: json.RawMessage(`{"path":"/srv/data.txt","token":"abc-secret-123"}`),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestAuditVerifyExitCodes(t *testing.T) {
	dir := newAuditData(t, 30)
	code, out, errs := run(t, "", "audit", "verify", "--data", dir)
	if code != exitOK {
		t.Fatalf("verify intact: code %d, %s %s", code, out, errs)
	}
	var rep ledger.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Intact || rep.RecordsChecked != 32 || rep.LatestCheckpoint == nil || rep.LatestCheckpoint.Size != 32 {
		t.Errorf("report = %+v", rep)
	}

	// Keep a checkpoint outside, then tamper with one byte through SQL.
	_, cp, _ := run(t, "", "audit", "checkpoint", "--data", dir)
	cpFile := filepath.Join(t.TempDir(), "trusted.checkpoint")
	os.WriteFile(cpFile, []byte(cp), 0o644)
	if code, _, errs := run(t, "", "audit", "verify", "--data", dir, "--trusted-checkpoint", cpFile); code != exitOK {
		t.Fatalf("verify with its own checkpoint: %d %s", code, errs)
	}
	st, err := sqlite.OpenLedger(filepath.Join(dir, LedgerDBFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().Exec(`UPDATE ledger_records SET data = CAST(replace(CAST(data AS TEXT), '"deny"', '"alow"') AS BLOB) WHERE seq = 13`); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, out, errs = run(t, "", "audit", "verify", "--data", dir)
	if code != exitFail || !strings.Contains(errs, "first bad seq 13") {
		t.Fatalf("verify tampered: code %d, stdout %s, stderr %s", code, out, errs)
	}
	rep = ledger.Report{}
	json.Unmarshal([]byte(out), &rep)
	if rep.Intact || rep.FirstBadSeq == nil || *rep.FirstBadSeq != 13 {
		t.Errorf("tampered report = %+v", rep)
	}

	if code, _, errs := run(t, "", "audit", "verify", "--data", filepath.Join(t.TempDir(), "nope")); code != exitUsage || !strings.Contains(errs, "hint:") {
		t.Errorf("verify missing dir: code %d, %s", code, errs)
	}
}

func TestAuditRollbackNeedsTrustedCheckpoint(t *testing.T) {
	dir := newAuditData(t, 25)
	_, cp, _ := run(t, "", "audit", "checkpoint", "--data", dir)
	cpFile := filepath.Join(t.TempDir(), "trusted.checkpoint")
	os.WriteFile(cpFile, []byte(cp), 0o644)
	st, _ := sqlite.OpenLedger(filepath.Join(dir, LedgerDBFile))
	st.DB().Exec(`DELETE FROM ledger_records WHERE seq >= 20`)
	st.DB().Exec(`DELETE FROM ledger_checkpoints WHERE size > 20`)
	st.Close()
	if code, out, errs := run(t, "", "audit", "verify", "--data", dir); code != exitOK {
		t.Fatalf("a clean rollback passes local verification (that is why trusted checkpoints exist): %d %s %s", code, out, errs)
	}
	code, out, _ := run(t, "", "audit", "verify", "--data", dir, "--trusted-checkpoint", cpFile)
	if code != exitFail || !strings.Contains(out, `"problem": "rollback"`) {
		t.Errorf("verify with the trusted checkpoint: %d %s", code, out)
	}
}

func TestAuditExportResumes(t *testing.T) {
	dir := newAuditData(t, 12)
	code, all, _ := run(t, "", "audit", "export", "--data", dir)
	if code != exitOK {
		t.Fatal(code)
	}
	lines := strings.Split(strings.TrimSuffix(all, "\n"), "\n")
	if len(lines) != 14 {
		t.Fatalf("%d lines, want 14", len(lines))
	}
	st, _ := sqlite.OpenLedger(filepath.Join(dir, LedgerDBFile))
	defer st.Close()
	var stored []string
	st.Scan(context.Background(), 0, func(e ledger.Entry) error { stored = append(stored, string(e.Data)); return nil })
	if diff := cmp.Diff(stored, lines); diff != "" {
		t.Errorf("export is not the stored bytes (-stored +export):\n%s", diff)
	}
	_, rest, _ := run(t, "", "audit", "export", "--data", dir, "--from-seq", "9")
	if diff := cmp.Diff(strings.Join(lines[9:], "\n")+"\n", rest); diff != "" {
		t.Errorf("export --from-seq 9 (-want +got):\n%s", diff)
	}
	if strings.Contains(all, "abc-secret-123") {
		t.Error("a sensitive parameter was exported")
	}
}

func TestAuditProofs(t *testing.T) {
	dir := newAuditData(t, 20)
	code, out, errs := run(t, "", "audit", "prove", "--data", dir, "--seq", "7")
	if code != exitOK {
		t.Fatalf("prove: %d %s", code, errs)
	}
	var p struct {
		ledger.InclusionProof
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(); err != nil || p.Index != 7 || p.Size != 22 {
		t.Errorf("inclusion proof %+v: %v", p.InclusionProof, err)
	}
	keys, _ := ledger.LoadKeys(dir)
	vs, _, _ := keys.Verifiers()
	c, _, err := ledger.OpenCheckpoint([]byte(p.Checkpoint), vs)
	if err != nil || string(c.Hash[:]) != string(p.Root) {
		t.Errorf("proof root is not the signed checkpoint's: %v", err)
	}
	code, out, errs = run(t, "", "audit", "consistency", "--data", dir, "--old", "10")
	if code != exitOK {
		t.Fatalf("consistency: %d %s", code, errs)
	}
	var cp ledger.ConsistencyProof
	json.Unmarshal([]byte(out), &cp)
	if err := cp.Verify(); err != nil || cp.Old != 10 || cp.New != 22 {
		t.Errorf("consistency proof %+v: %v", cp, err)
	}
	if code, _, _ := run(t, "", "audit", "prove", "--data", dir, "--seq", "99"); code != exitUsage {
		t.Errorf("prove beyond the log: code %d", code)
	}
}

func TestAuditSearchTailHash(t *testing.T) {
	dir := newAuditData(t, 9)
	_, out, _ := run(t, "", "audit", "search", "--data", dir, "--agent", "agent-b", "--decision", "deny", "--since", "1h")
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("search found %d records, want 3:\n%s", n, out)
	}
	_, out, _ = run(t, "", "audit", "search", "--data", dir, "--since", time.Now().Add(time.Hour).Format(time.RFC3339))
	if out != "" {
		t.Errorf("search in the future found %q", out)
	}
	code, h, errs := run(t, "", "audit", "hash", "--data", dir, "abc-secret-123")
	if !strings.Contains(errs, "pipe it on stdin") {
		t.Errorf("a secret on the command line was not warned about: %q", errs)
	}
	h = strings.TrimSpace(h)
	if code != exitOK || !strings.HasPrefix(h, ledger.HashPrefix) {
		t.Fatalf("hash: %d %q", code, h)
	}
	_, out, _ = run(t, "", "audit", "search", "--data", dir, "--value", h)
	if n := strings.Count(out, "\n"); n != 9 {
		t.Errorf("search by the value's HMAC found %d records, want 9", n)
	}
	_, out, _ = run(t, "", "audit", "tail", "--data", dir, "-n", "2")
	if n := strings.Count(out, "\n"); n != 2 || !strings.Contains(out, `"kind":"shutdown"`) {
		t.Errorf("tail -n 2 = %q", out)
	}
	if code, _, errs := run(t, "", "audit", "search", "--data", dir, "--since", "yesterday"); code != exitUsage || !strings.Contains(errs, "hint:") {
		t.Errorf("bad --since: %d %s", code, errs)
	}
	// Decisions match in any case; an unknown kind is refused with the kinds, not answered with
	// nothing.
	_, out, _ = run(t, "", "audit", "search", "--data", dir, "--agent", "agent-b", "--decision", "DENY")
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("--decision DENY found %d records, want 3", n)
	}
	code, out, errs = run(t, "", "audit", "search", "--data", dir, "--kind", "decisions")
	if code != exitUsage || out != "" || !strings.Contains(errs, `unknown --kind "decisions"`) || !strings.Contains(errs, `did you mean "decision"?`) || !strings.Contains(errs, "approval_requested") {
		t.Errorf("unknown kind: %d %q %s", code, out, errs)
	}
	if code, _, errs := run(t, "", "audit", "search", "--data", dir, "--decision", "allowed"); code != exitUsage || !strings.Contains(errs, "constrain") {
		t.Errorf("unknown decision: %d %s", code, errs)
	}
	// The secret on stdin (no argument, or "-") hashes to what the argument did, without the warning.
	for _, args := range [][]string{{"audit", "hash", "--data", dir}, {"audit", "hash", "--data", dir, "-"}} {
		code, got, errs := run(t, "abc-secret-123\n", args...)
		if code != exitOK || strings.TrimSpace(got) != h || errs != "" {
			t.Errorf("%v: %d %q %q, want %q", args, code, got, errs, h)
		}
	}
}

func TestAuditKeygenRefusesOverwrite(t *testing.T) {
	dir := newAuditData(t, 1)
	if code, _, errs := run(t, "", "audit", "keygen", "--data", dir); code != exitUsage || !strings.Contains(errs, "already exists") {
		t.Errorf("second keygen: %d %s", code, errs)
	}
	_, pub, _ := run(t, "", "audit", "pubkey", "--data", dir)
	if !strings.HasPrefix(pub, "portcullis.ledger/") || strings.Count(pub, "\n") != 1 {
		t.Errorf("pubkey = %q", pub)
	}
}

func TestAuditVerifyWithTheAuditorsKey(t *testing.T) {
	dir := newAuditData(t, 5)
	_, pub, _ := run(t, "", "audit", "pubkey", "--data", dir)
	own := filepath.Join(t.TempDir(), "ledger.pub")
	os.WriteFile(own, []byte(pub), 0o644)
	code, _, errs := run(t, "", "audit", "verify", "--data", dir, "--pubkey", own)
	if code != exitOK || errs != "" {
		t.Errorf("verify with the auditor's copy of the key: %d, stderr %q (no progress bar off a terminal)", code, errs)
	}
	other := filepath.Join(t.TempDir(), "other")
	run(t, "", "audit", "keygen", "--data", other)
	code, out, _ := run(t, "", "audit", "verify", "--data", dir, "--pubkey", filepath.Join(other, ledger.PublicKeysFile))
	if code != exitFail || !strings.Contains(out, `"problem": "foreign_signature"`) {
		t.Errorf("verify with another ledger's key: %d %s", code, out)
	}
}

// Someone who can write ledger.db but does not hold the key deletes checkpoints through SQL —
// all of them, or the last one with the tail it covered rewritten on a consistent prev chain:
// verify fails with a stable reason.
func TestAuditVerifyRemovedCheckpoints(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, st *sqlite.Ledger)
		problem string
	}{
		{"all checkpoints deleted", func(t *testing.T, st *sqlite.Ledger) {
			if _, err := st.DB().Exec(`DELETE FROM ledger_checkpoints`); err != nil {
				t.Fatal(err)
			}
		}, ledger.ProblemNoCheckpoint},
		{"last checkpoint deleted, tail rewritten", func(t *testing.T, st *sqlite.Ledger) {
			if _, err := st.DB().Exec(`DELETE FROM ledger_checkpoints WHERE id = (SELECT max(id) FROM ledger_checkpoints)`); err != nil {
				t.Fatal(err)
			}
			cp, _, err := st.LatestCheckpoint(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			rewriteTailSQL(t, st, cp.Size)
		}, ledger.ProblemUnsignedTail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newAuditData(t, 30)
			st, err := sqlite.OpenLedger(filepath.Join(dir, LedgerDBFile))
			if err != nil {
				t.Fatal(err)
			}
			tc.tamper(t, st)
			st.Close()
			code, out, errs := run(t, "", "audit", "verify", "--data", dir)
			if code != exitFail || !strings.Contains(out, `"problem": "`+tc.problem+`"`) || !strings.Contains(errs, "ledger tampered") {
				t.Fatalf("verify: code %d, stdout %s, stderr %s; want exit %d with %s", code, out, errs, exitFail, tc.problem)
			}
		})
	}
}

// rewriteTailSQL rewrites the records from seq from on through SQL: decisions become allows,
// and seq/prev are recomputed so that the chain stays consistent.
func rewriteTailSQL(t *testing.T, st *sqlite.Ledger, from uint64) {
	t.Helper()
	var recs [][]byte
	if from > 0 {
		from-- // the record the tail links to
	}
	st.Scan(context.Background(), from, func(e ledger.Entry) error {
		recs = append(recs, append([]byte(nil), e.Data...))
		return nil
	})
	for i := 1; i < len(recs); i++ {
		r, err := ledger.ParseRecord(recs[i])
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == ledger.KindDecision {
			r.Decision = "allow"
		}
		h := ledger.LeafHash(recs[i-1])
		r.Prev = fmt.Sprintf("%x", h[:])
		if recs[i], err = ledger.Encode(r); err != nil {
			t.Fatal(err)
		}
		if _, err := st.DB().Exec(`UPDATE ledger_records SET data = ? WHERE seq = ?`, recs[i], r.Seq); err != nil {
			t.Fatal(err)
		}
	}
}

// Tables for a person (--format table, the default on a terminal), the stored JSON for a
// program (--format json, the default when piped).
func TestAuditFormats(t *testing.T) {
	dir := newAuditData(t, 3)
	code, out, errOut := run(t, "", "audit", "tail", "--data", dir, "-n", "2", "--format", "table")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) != 3 || !strings.HasPrefix(lines[0], "SEQ  TIME") || !strings.Contains(lines[2], "shutdown") {
		t.Errorf("tail table: %d %q %s", code, out, errOut)
	}
	_, piped, _ := run(t, "", "audit", "tail", "--data", dir, "-n", "2")
	_, asJSON, _ := run(t, "", "audit", "tail", "--data", dir, "-n", "2", "--format", "json")
	if piped != asJSON || !strings.HasPrefix(piped, `{"v":2`) {
		t.Errorf("piped output is not the records' JSON: %q", piped)
	}
	code, out, _ = run(t, "", "audit", "search", "--data", dir, "--decision", "DENY", "--format", "table")
	if code != exitOK || !strings.Contains(out, "DECISION") || !strings.Contains(out, " deny ") {
		t.Errorf("search table: %d %q", code, out)
	}
	if code, _, errOut := run(t, "", "audit", "tail", "--data", dir, "--format", "xml"); code != exitUsage || !strings.Contains(errOut, "want table or json") {
		t.Errorf("unknown format: %d %s", code, errOut)
	}
}
