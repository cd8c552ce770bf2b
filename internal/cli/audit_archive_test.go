package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// audit archive cuts the log at a signed checkpoint, verify reads archives + live, prove finds
// an archived record in its archive; a removed archive fails verify.
func TestAuditArchive(t *testing.T) {
	dir := newAuditData(t, 48) // 50 records, checkpoints every 10 records (1, 11, …, 41, 50)
	if code, _, errs := run(t, "", "audit", "archive", "--data", dir); code != exitUsage || !strings.Contains(errs, "--max-records") {
		t.Fatalf("archive without a retention: %d %s", code, errs)
	}
	code, out, errs := run(t, "", "audit", "archive", "--data", dir, "--max-records", "15", "--segment-records", "20")
	if code != exitOK {
		t.Fatalf("archive: %d %s %s", code, out, errs)
	}
	var res struct{ Archived []ledger.ArchiveResult }
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	// Keep the newest 15 of 50: cut at the newest checkpoint ≤ 35 (31), in files of ≤ 20 records.
	if len(res.Archived) != 2 || res.Archived[0].To != 11 || res.Archived[1].To != 31 {
		t.Fatalf("archived: %+v", res.Archived)
	}
	code, out, errs = run(t, "", "audit", "verify", "--data", dir)
	if code != exitOK {
		t.Fatalf("verify archives + live: %d %s %s", code, out, errs)
	}
	var rep ledger.ArchivedReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.Intact || len(rep.Archives) != 2 || rep.Log.RecordsChecked != 50 {
		t.Fatalf("report: %+v %v", rep, err)
	}
	code, out, errs = run(t, "", "audit", "verify", "--data", dir, "--archive", "none")
	var live ledger.Report
	if json.Unmarshal([]byte(out), &live); code != exitOK || live.ArchivedRecords != 31 || live.RecordsChecked != 19 {
		t.Fatalf("verify the live log alone: %d %+v %s", code, live, errs)
	}
	code, out, errs = run(t, "", "audit", "prove", "--data", dir, "--seq", "5")
	var p struct {
		ledger.InclusionProof
		Checkpoint string `json:"checkpoint"`
	}
	if json.Unmarshal([]byte(out), &p); code != exitOK || p.Verify() != nil || p.Size != 11 {
		t.Fatalf("prove an archived record: %d %+v %s", code, p.InclusionProof, errs)
	}
	keys, _ := ledger.LoadKeys(dir)
	vs, _, _ := keys.Verifiers()
	if c, _, err := ledger.OpenCheckpoint([]byte(p.Checkpoint), vs); err != nil || string(c.Hash[:]) != string(p.Root) {
		t.Fatalf("the archived record's proof is not against its archive's signed end: %v", err)
	}
	// Nothing more is due: a second run archives nothing.
	if code, out, _ := run(t, "", "audit", "archive", "--data", dir, "--max-records", "15"); code != exitOK || !strings.Contains(out, `"to": 0`) {
		t.Fatalf("second run: %d %s", code, out)
	}
	// The gateway continues on the pruned log.
	appendDecisions(t, dir, 5, 100)
	if code, out, errs := run(t, "", "audit", "verify", "--data", dir); code != exitOK {
		t.Fatalf("verify after more records: %d %s %s", code, out, errs)
	}
	// Removing the first archive leaves a log that begins at a signed checkpoint (older
	// archives may be deleted on purpose); removing the one the live log continues from breaks
	// the chain.
	names, _ := filepath.Glob(filepath.Join(dir, "archive", "ledger-*.jsonl.gz"))
	if len(names) != 2 {
		t.Fatalf("archive files: %v", names)
	}
	if err := os.Remove(names[1]); err != nil {
		t.Fatal(err)
	}
	code, out, errs = run(t, "", "audit", "verify", "--data", dir)
	if code != exitFail || !strings.Contains(errs, "first bad seq 11") {
		t.Fatalf("verify without the middle archive: %d %s %s", code, out, errs)
	}
}
