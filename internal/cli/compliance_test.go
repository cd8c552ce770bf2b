package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/compliance"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// TestComplianceReportGatewayLedger reports over a ledger the real gateway wrote: the figures
// are the decisions it made, the ledger verifies against its signed checkpoints, and the HTML
// is one self-contained page.
func TestComplianceReportGatewayLedger(t *testing.T) {
	calls := []string{
		`{"tool":"fetch_customer_names","params":{"limit":50}}`,
		`{"tool":"fetch_customer_names","params":{"limit":500}}`,
		`{"tool":"fetch_customer_names","params":{"limit":1001}}`,
		`{"tool":"delete_file","params":{"path":"/tmp/x"}}`,
		`{"tool":"delete_file","params":{"path":"/tmp/y"}}`,
		`{"tool":"fetch_customer_names","params":{"limit":5,"filter":"x' UNION SELECT password FROM users --"}}`,
	}
	want := []string{"ALLOW", "ALLOW", "DENY", "DENY", "DENY", "CONSTRAIN"}
	dir, _ := replayGatewayLedger(t, calls, want)

	code, out, errs := run(t, "", "compliance", "report", "--data", dir, "--pack", "soc2", "--format", "json")
	if code != exitOK {
		t.Fatalf("report: code %d: %s", code, errs)
	}
	var rep compliance.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	if d := rep.Decisions; d["allow"] != 2 || d["deny"] != 3 || d["constrain"] != 1 || d["log"] != 0 {
		t.Errorf("decisions %v, want 2 allow, 3 deny, 1 constrain", d)
	}
	if len(rep.PolicyVersions) != 1 || rep.PolicyVersions[0].Decisions != 6 || !strings.HasPrefix(rep.PolicyVersions[0].Version, "sha256:") {
		t.Errorf("policy versions %+v, want the one version that made the 6 decisions", rep.PolicyVersions)
	}
	if len(rep.Days) != 1 || rep.Days[0].Deny != 3 {
		t.Errorf("days %+v", rep.Days)
	}
	if a := rep.Approvals; a.Requested != 1 || a.Pending != 1 || a.Approved+a.Denied+a.Expired != 0 {
		t.Errorf("approvals %+v, want the one held call pending", a)
	}
	if rep.Anomalies.Findings["sql_injection"] == 0 || rep.Anomalies.Threat["high"]+rep.Anomalies.Threat["critical"] == 0 {
		t.Errorf("findings %v, threat levels %v, want the SQL injection rated high or more", rep.Anomalies.Findings, rep.Anomalies.Threat)
	}
	v := rep.Ledger
	if !v.Verification.Intact || !v.Signed || v.PeriodRecords == 0 || v.Verification.CheckpointsChecked == 0 {
		t.Errorf("ledger evidence %+v, want intact and signed", v)
	}
	var cc6 *compliance.ControlEvidence
	for i := range rep.Controls {
		if rep.Controls[i].ID == "CC6.1" {
			cc6 = &rep.Controls[i]
		}
	}
	if cc6 == nil || cc6.Title != "Logical access security" || !strings.Contains(strings.Join(cc6.Evidence, "\n"), "6 decisions: 2 allow, 1 constrain, 3 deny") {
		t.Errorf("CC6.1 evidence %+v", cc6)
	}

	// HTML to a file: self-contained (no external reference), with the chart.
	html := filepath.Join(t.TempDir(), "soc2.html")
	if code, _, errs := run(t, "", "compliance", "report", "--data", dir, "--pack", "soc2", "--out", html); code != exitOK {
		t.Fatalf("html: %d %s", code, errs)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"<svg", `class="deny"`, "CC8.1", "Intact.", "every one is covered by a signed checkpoint"} {
		if !strings.Contains(string(page), s) {
			t.Errorf("HTML lacks %q", s)
		}
	}
	for _, s := range []string{"src=", "href=", "<script", "@import", "url("} {
		if strings.Contains(string(page), s) {
			t.Errorf("HTML refers to an external asset (%q)", s)
		}
	}

	// A tampered ledger: the report says so and the command fails.
	st, err := sqlite.OpenLedger(filepath.Join(dir, LedgerDBFile))
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.DB().Exec(`UPDATE ledger_records SET data = CAST(replace(CAST(data AS TEXT), '"deny"', '"alow"') AS BLOB) WHERE seq = (SELECT MIN(seq) FROM ledger_records WHERE CAST(data AS TEXT) LIKE '%"deny"%')`)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs = run(t, "", "compliance", "report", "--data", dir, "--pack", "soc2", "--format", "json")
	if code != exitFail || !strings.Contains(errs, "does not verify") {
		t.Fatalf("tampered: code %d, stderr %s", code, errs)
	}
	rep = compliance.Report{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Ledger.Verification.Intact || rep.Ledger.Signed {
		t.Errorf("tampered report: %v %+v", err, rep.Ledger)
	}
}

// TestComplianceReportMalformedRecord: a stored record that is not a record stops the report
// with the seq named, rather than a report that silently skipped it.
func TestComplianceReportMalformedRecord(t *testing.T) {
	dir := newAuditData(t, 8)
	st, err := sqlite.OpenLedger(filepath.Join(dir, LedgerDBFile))
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.DB().Exec(`UPDATE ledger_records SET data = CAST('{"v":1,"seq":4,"kind":"decision"' AS BLOB) WHERE seq = 4`)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "", "compliance", "report", "--data", dir, "--pack", "soc2", "--format", "json", "--since", "3650d")
	if code != exitUsage || out != "" || !strings.Contains(errs, "record 4") {
		t.Fatalf("malformed record: code %d, stdout %q, stderr %s", code, out, errs)
	}
}

func TestComplianceReportUsage(t *testing.T) {
	for _, args := range [][]string{
		{"compliance", "report", "--pack", "nope"},
		{"compliance", "report", "--pack", "hipaa", "--format", "pdf"},
		{"compliance", "report", "--pack", "hipaa", "--since", "yesterday"},
		{"compliance", "frobnicate"},
	} {
		if code, _, errs := run(t, "", args...); code != exitUsage || errs == "" {
			t.Errorf("%v: code %d, stderr %q", args, code, errs)
		}
	}
}

// TestCompliancePacksPolicyTest runs the packs' own test files the way a user does.
func TestCompliancePacksPolicyTest(t *testing.T) {
	code, out, errs := run(t, "", "policy", "test", "../../examples/compliance")
	if code != exitOK || !strings.Contains(out, " 0 failed") {
		t.Fatalf("policy test: %d %s %s", code, out, errs)
	}
	if code, out, errs := run(t, "", "policy", "lint", "../../examples/compliance"); code != exitOK {
		t.Fatalf("policy lint: %d %s %s", code, out, errs)
	}
}

// TestComplianceReportPackRules runs the gateway with the ISO 27001 pack as the agent's policy:
// each pack rule's decisions are counted under the rule, and under its controls.
func TestComplianceReportPackRules(t *testing.T) {
	pack, err := os.ReadFile("../../examples/compliance/iso27001.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pack = []byte(strings.Replace(string(pack), "agent_id: workplace-agent", "agent_id: report-generator-v1", 1))
	calls := []string{
		`{"tool":"send_email","params":{"to":"a@example.com"}}`,
		`{"tool":"change_dns","params":{"environment":"staging"}}`,
		`{"tool":"change_dns","params":{"environment":"staging"}}`,
		`{"tool":"deploy_app","params":{"environment":"production"}}`,
		`{"tool":"deploy_app","params":{}}`,
		`{"tool":"change_dns","params":{"environment":"staging","key":"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"}}`,
	}
	dir, _ := gatewayLedger(t, pack, calls, []string{"ALLOW", "ALLOW", "ALLOW", "CONSTRAIN", "DENY", "DENY"})
	code, out, errs := run(t, "", "compliance", "report", "--data", dir, "--pack", "iso27001", "--format", "json")
	if code != exitOK {
		t.Fatalf("report: %d %s", code, errs)
	}
	var rep compliance.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]int{}
	for _, r := range rep.Rules {
		got[r.Rule] = r.Decisions
	}
	for rule, want := range map[string]map[string]int{
		"outbound":                    {"allow": 1},
		"non_production_change":       {"allow": 2},
		"production_change_held":      {"constrain": 1},
		"secrets_never_in_parameters": {"deny": 1},
		"documents_within_clearance":  {},
	} {
		if fmt.Sprint(got[rule]) != fmt.Sprint(want) {
			t.Errorf("rule %s: %v, want %v", rule, got[rule], want)
		}
	}
	for _, c := range rep.Controls {
		if c.ID == "A.8.32" && !strings.Contains(strings.Join(c.Evidence, "\n"), "rule production_change_held decided 1 calls (1 constrain)") {
			t.Errorf("A.8.32 evidence: %v", c.Evidence)
		}
	}
}

// TestComplianceReportArchives counts the archived records of the period with the live ones,
// once each, and verifies the archives with the live log.
func TestComplianceReportArchives(t *testing.T) {
	dir := newAuditData(t, 48) // 50 records
	if code, out, errs := run(t, "", "audit", "archive", "--data", dir, "--max-records", "15", "--segment-records", "20"); code != exitOK {
		t.Fatalf("archive: %d %s %s", code, out, errs)
	}
	for _, c := range []struct {
		archive         string
		records, seq0   uint64
		archivedRecords uint64
	}{{"", 50, 0, 0}, {"none", 19, 31, 31}} {
		args := []string{"compliance", "report", "--data", dir, "--pack", "gdpr", "--format", "json", "--since", "3650d"}
		if c.archive != "" {
			args = append(args, "--archive", c.archive)
		}
		code, out, errs := run(t, "", args...)
		var rep compliance.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK {
			t.Fatalf("--archive %q: %d %v %s", c.archive, code, err, errs)
		}
		l := rep.Ledger
		if l.PeriodRecords != c.records || l.FirstSeq == nil || *l.FirstSeq != c.seq0 || *l.LastSeq != 49 ||
			!l.Verification.Intact || l.Verification.ArchivedRecords != c.archivedRecords {
			t.Errorf("--archive %q: %+v", c.archive, l)
		}
		var retention string
		for _, ctl := range rep.Controls {
			if ctl.ID == "Art. 5(1)(e)" {
				retention = strings.Join(ctl.Evidence, "\n")
			}
		}
		if want := map[string]string{"": "2 archives of the records before seq 31 verified with the live log",
			"none": "31 records archived and pruned"}[c.archive]; !strings.Contains(retention, want) {
			t.Errorf("--archive %q: retention evidence %q, want %q", c.archive, retention, want)
		}
	}
}

// BenchmarkComplianceReport reports over the replay benchmark's generated ledger (verification
// and the streamed scan, through the command, JSON out) and reports records/s.
func BenchmarkComplianceReport(b *testing.B) {
	n := replayBenchRecords
	if v := os.Getenv("PORTCULLIS_REPLAY_BENCH_RECORDS"); v != "" {
		fmt.Sscan(v, &n)
	}
	dir := benchDecisionLedger(b, n)
	b.ResetTimer()
	for b.Loop() {
		if code := Main(context.Background(), []string{"compliance", "report", "--data", dir, "--pack", "soc2", "--since", "3650d", "--format", "json"},
			strings.NewReader(""), io.Discard, io.Discard); code != exitOK {
			b.Fatalf("exit %d", code)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
