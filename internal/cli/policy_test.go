package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const seedDir = "../policy/testdata/seed"

func TestPolicyCheck(t *testing.T) {
	code, out, errOut := run(t, "", "policy", "check", seedDir)
	if code != exitOK || !strings.Contains(out, "ok: 4 files, 4 policies") {
		t.Errorf("check seed: code %d out %q err %q", code, out, errOut)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("agent_id: a\nrules:\n  - name: r\n    tool: t\n    action: ALLOW\n    conditons: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, "", "policy", "check", bad)
	want := bad + ":6:5: rules[0].conditons: unknown key \"conditons\"\n  hint: did you mean \"conditions\"?"
	if code != exitFail || !strings.HasPrefix(errOut, want) {
		t.Errorf("check bad: code %d stderr %q, want prefix %q", code, errOut, want)
	}
	code, _, errOut = run(t, "", "policy", "check", filepath.Join(dir, "missing.yaml"))
	if code != exitUsage || !strings.Contains(errOut, "hint:") {
		t.Errorf("check missing: code %d stderr %q", code, errOut)
	}
	code, _, _ = run(t, "", "policy", "check")
	if code != exitUsage {
		t.Errorf("check without args: code %d", code)
	}
	// A directory with no policy (here: only a test file) would make a gateway that denies every
	// call: refused unless asked for.
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "x_test.yaml"), []byte("tests: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, "", "policy", "check", empty)
	if code != exitFail || !strings.Contains(errOut, "no policy in "+empty) || !strings.Contains(errOut, "--allow-empty") {
		t.Errorf("check empty: code %d stderr %q", code, errOut)
	}
	if code, out, errOut = run(t, "", "policy", "check", "--allow-empty", empty); code != exitOK || !strings.Contains(out, "ok: 0 files") {
		t.Errorf("check empty, allowed: code %d %q %q", code, out, errOut)
	}
}

func TestPolicyUnknownSub(t *testing.T) {
	code, _, errOut := run(t, "", "policy", "frob")
	if code != exitUsage || !strings.Contains(errOut, `policy: unknown command "frob"`) {
		t.Errorf("code %d stderr %q", code, errOut)
	}
	code, out, _ := run(t, "", "policy", "help")
	if code != exitOK || !strings.Contains(out, "check") || !strings.Contains(out, "eval") || !strings.Contains(out, "test") {
		t.Errorf("help: %q", out)
	}
}

func TestPolicyEval(t *testing.T) {
	input := strings.Join([]string{
		`{"agent":{"id":"report-generator-v1"},"tool":"fetch_sales_data","params":{"query_type":"monthly","date_range_days":90},"time":"2026-03-10T10:00:00-04:00"}`,
		`{"agent":{"id":"report-generator-v1"},"tool":"fetch_sales_data","params":{"query_type":"monthly","date_range_days":90},"time":"2026-03-10T10:00:00-04:00","threat_level":"high"}`,
		`{"agent":{"id":"report-generator-v1"},"tool":"send_email","time":"2026-03-10T10:00:00-04:00","threat_level":"critical"}`,
		`this is not json`,
		``,
		`{"agent":{"id":"customer-export-agent"},"user":{"id":"u","permissions":["data_export"]},"tool":"export_customer_data","params":{"export_size_rows":10000},"time":"2026-03-10T10:00:00-04:00","calls":[{"tool":"export_customer_data","time":"2026-03-10T09:10:00-04:00"},{"tool":"export_customer_data","time":"2026-03-10T09:20:00-04:00"},{"tool":"export_customer_data","time":"2026-03-10T09:30:00-04:00"},{"tool":"export_customer_data","time":"2026-03-10T09:40:00-04:00"},{"tool":"export_customer_data","time":"2026-03-10T09:50:00-04:00"}]}`,
		`{"agent":{"id":"report-generator-v1"},"tool":"delete_file","time":"2026-03-10T10:00:00-04:00","threat_level":"bogus"}`,
		`{"agent":{"id":"report-generator-v1"},"tool":"delete_file","time":"2026-03-10T10:00:00-04:00","extra":1}`,
		`{"agent":{"id":"nobody"},"tool":"x","time":"2026-03-10T10:00:00Z"}`,
	}, "\n")
	code, out, errOut := run(t, input, "policy", "eval", "--policy", seedDir+"/01_deny_by_default.yaml", "--policy", seedDir+"/02_context_aware.yaml", "--input", "-")
	if code != exitFail {
		t.Errorf("exit code %d, want %d (some lines were malformed); stderr %q", code, exitFail, errOut)
	}
	type line struct {
		Decision, Rule, Enforcement, RuleEnforcement, Error string
		Explain                                             []any
	}
	var got []line
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var x struct {
			Decision        string `json:"decision"`
			Rule            string `json:"rule"`
			Enforcement     string `json:"enforcement"`
			RuleEnforcement string `json:"rule_enforcement"`
			Error           string `json:"error"`
			Explain         []any  `json:"explain"`
		}
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatalf("output line is not JSON: %q", l)
		}
		got = append(got, line{x.Decision, x.Rule, x.Enforcement, x.RuleEnforcement, x.Error, nil})
		if x.Error == "" && x.Explain == nil {
			t.Errorf("decision line without explain: %q", l)
		}
	}
	want := []line{
		{Decision: "ALLOW", Rule: "read_sales_data", Enforcement: "execute_tool"},
		{Decision: "CONSTRAIN", Rule: "high_risk_api_call", Enforcement: "log_and_queue_for_approval", RuleEnforcement: "require_human_approval"},
		{Decision: "DENY", Enforcement: "log_and_return_error"},
		{Error: "line 4: decode request: invalid character 'h' in literal true (expecting 'r')"},
		{Decision: "CONSTRAIN", Rule: "bulk_export_requires_approval", Enforcement: "log_and_queue_for_approval", RuleEnforcement: "require_human_approval_and_log"},
		{Error: `line 7: decode request: threat_level: unknown threat level "bogus" (want one of none, low, medium, high, critical)`},
		{Error: `line 8: decode request: json: unknown field "extra"`},
		{Decision: "DENY", Enforcement: "log_and_return_error"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("eval output (-want +got):\n%s", diff)
	}
}

func TestPolicyEvalFileAndErrors(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(in, []byte(`{"agent":{"id":"report-generator-v1"},"tool":"delete_file","time":"2026-03-10T10:00:00Z"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "", "policy", "eval", "--policy", seedDir, "--input", in)
	if code != exitOK || !strings.HasPrefix(out, `{"decision":"DENY","rule":"delete_operations"`) {
		t.Errorf("code %d out %q", code, out)
	}
	code, _, errOut := run(t, "", "policy", "eval", "--input", in)
	if code != exitUsage || !strings.Contains(errOut, "--policy is required") {
		t.Errorf("no --policy: code %d %q", code, errOut)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("agent_id: a\ndefault_action: MAYBE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, "", "policy", "eval", "--policy", bad, "--input", in)
	if code != exitFail || !strings.Contains(errOut, bad+":2:17: default_action: unknown decision") {
		t.Errorf("bad policy: code %d %q", code, errOut)
	}
	// A line over the limit is reported, and the following line still evaluated.
	long := `{"agent":{"id":"x"},"tool":"t","time":"2026-03-10T10:00:00Z","params":{"p":"` + strings.Repeat("a", maxEvalLine) + `"}}` + "\n" +
		`{"agent":{"id":"x"},"tool":"t","time":"2026-03-10T10:00:00Z"}` + "\n"
	code, out, _ = run(t, long, "policy", "eval", "--policy", seedDir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitFail || len(lines) != 2 || !strings.Contains(lines[0], `"error":"line 1: longer than`) || !strings.Contains(lines[1], `"decision":"DENY"`) {
		t.Errorf("long line: code %d out %.300q", code, out)
	}
}

func TestPolicyTest(t *testing.T) {
	dir := t.TempDir()
	seed, err := os.ReadFile(seedDir + "/01_deny_by_default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), seed, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := `cases:
  - name: monthly report at 10:00
    request:
      agent: {id: report-generator-v1}
      tool: fetch_sales_data
      params: {query_type: monthly, date_range_days: 30}
      time: "2026-03-10T10:00:00-04:00"
    want: ALLOW
    rule: read_sales_data
  - name: high threat is held
    request: {agent: {id: report-generator-v1}, tool: fetch_sales_data, params: {query_type: monthly, date_range_days: 30}, time: "2026-03-10T10:00:00-04:00", threat_level: high}
    want: constrain
  - name: delete is denied
    request: {agent: {id: report-generator-v1}, tool: delete_file, time: "2026-03-10T10:00:00-04:00"}
    want: DENY
    rule: delete_operations
`
	if err := os.WriteFile(filepath.Join(dir, "policy_test.yaml"), []byte(tests), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "policy", "test", "-v", dir)
	if code != exitOK || !strings.HasSuffix(out, "3 passed, 0 failed\n") || strings.Count(out, "PASS ") != 3 {
		t.Errorf("passing tests: code %d out %q err %q", code, out, errOut)
	}
	failing := tests + `  - name: wrong expectation
    request: {agent: {id: report-generator-v1}, tool: delete_file, time: "2026-03-10T10:00:00-04:00"}
    want: ALLOW
`
	if err := os.WriteFile(filepath.Join(dir, "policy_test.yaml"), []byte(failing), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, "", "policy", "test", dir)
	wantLine := "FAIL " + filepath.Join(dir, "policy_test.yaml") + ":17:5: wrong expectation: got DENY (rule \"delete_operations\"), want ALLOW"
	if code != exitFail || !strings.Contains(out, wantLine) || !strings.HasSuffix(out, "3 passed, 1 failed\n") {
		t.Errorf("failing test: code %d out %q", code, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy_test.yaml"), []byte("cases:\n  - name: x\n    wants: ALLOW\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, "", "policy", "test", dir)
	if code != exitFail || !strings.Contains(errOut, ":3:5: cases[0].wants: unknown key") {
		t.Errorf("malformed test file: code %d %q", code, errOut)
	}
}

func TestPolicyTestSeed(t *testing.T) {
	code, out, errOut := run(t, "", "policy", "test", seedDir)
	if code != exitOK || out != "7 passed, 0 failed\n" {
		t.Errorf("code %d out %q err %q", code, out, errOut)
	}
}

// TestPolicyEvalExactNumbers: policy eval reads numbers as written, so its answer is the
// gateway's: 2^53+1 is above a max_value of 2^53 (read as float64 both were 2^53).
func TestPolicyEvalExactNumbers(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.yaml")
	src := "agent_id: a\ndefault_action: DENY\nrules:\n  - name: small\n    tool: pay\n    action: ALLOW\n    conditions:\n      - parameter: amount\n        max_value: 9007199254740992\n"
	if err := os.WriteFile(pol, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ amount, want string }{
		{"9007199254740992", `"decision":"ALLOW"`},
		{"9007199254740993", `"decision":"DENY"`},
		{"9007199254740992.9", `"decision":"DENY"`},
		{"1e400", `"decision":"DENY"`},
	} {
		in := `{"agent":{"id":"a"},"tool":"pay","time":"2026-03-10T10:00:00Z","threat_level":"none","params":{"amount":` + tc.amount + `}}` + "\n"
		_, out, errOut := run(t, in, "policy", "eval", "--policy", pol, "--input", "-")
		if !strings.Contains(out, tc.want) {
			t.Errorf("amount %s: %q %q, want %s", tc.amount, out, errOut, tc.want)
		}
	}
}

func TestPolicyEvalTable(t *testing.T) {
	input := `{"agent":{"id":"report-generator-v1"},"tool":"fetch_sales_data","params":{"query_type":"monthly","date_range_days":90},"time":"2026-03-10T10:00:00-04:00"}` + "\nnot json\n"
	code, out, _ := run(t, input, "policy", "eval", "--policy", seedDir+"/01_deny_by_default.yaml", "--policy", seedDir+"/02_context_aware.yaml", "--format", "table")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitFail || len(lines) != 3 || !strings.HasPrefix(lines[0], "LINE  DECISION  RULE") ||
		!strings.HasPrefix(lines[1], "1     ALLOW") || !strings.HasPrefix(lines[2], "2     ERROR") {
		t.Errorf("exit %d\n%s", code, out)
	}
}
