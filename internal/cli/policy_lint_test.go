package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPolicyLint(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(broken, []byte("agent_id: a\nrules:\n  - name: r\n    tool: \"(\"\n    action: ALLOW\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seed := "../policy/testdata/seed"
	lint := "../policy/testdata/lint/"
	advisory := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(advisory, []byte("inspection:\n  request_block_level: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		args      []string
		code      int
		stdoutHas []string
		stderrHas []string
		stdoutNot []string
	}{
		{"seed is clean but for an info", []string{seed}, exitOK,
			[]string{"01_deny_by_default.yaml:32:5: PL008 info:", "delete_operations", "  hint: ", "1 findings: 0 error, 0 warning, 1 info"}, nil, nil},
		{"info fails with --fail-on info", []string{"--fail-on", "info", seed}, exitFail, []string{"PL008"}, nil, nil},
		{"clean file", []string{lint + "pl006_ok.yaml"}, exitOK, []string{"ok: no findings (1 files, 8 rules)"}, nil, []string{"PL0"}},
		{"warnings fail", []string{lint + "pl006_bad.yaml"}, exitFail,
			[]string{"pl006_bad.yaml:9:5: PL006 warning: rule \"narrow_allow\" (ALLOW) is shadowed by an earlier rule with the same action, \"broad_allow\" (ALLOW)"}, nil, nil},
		{"errors fail even with --fail-on error", []string{"--fail-on", "error", lint + "pl007_bad.yaml"}, exitFail, []string{"PL007 error"}, nil, nil},
		{"warnings pass with --fail-on error", []string{"--fail-on", "error", lint + "pl001_bad.yaml"}, exitOK, []string{"PL001 warning"}, nil, nil},
		{"does not load", []string{broken}, exitUsage, nil, []string{"broken.yaml:4:11:", "invalid regular expression", "hint:"}, nil},
		{"missing file", []string{"no/such/dir"}, exitUsage, nil, []string{"no/such/dir", "hint:"}, nil},
		{"no path", nil, exitUsage, nil, []string{"no path given", "hint:"}, nil},
		{"bad severity", []string{"--fail-on", "fatal", seed}, exitUsage, nil, []string{"unknown severity", "hint:"}, nil},
		{"bad format", []string{"--format", "xml", seed}, exitUsage, nil, []string{"unknown format", "hint:"}, nil},
		{"no threat rule passes at the default block level", []string{lint + "pl009_bad.yaml"}, exitOK, []string{"PL008 info"}, nil, []string{"PL009"}},
		{"no threat rule warns at block level none", []string{"--request-block-level", "none", lint + "pl009_bad.yaml"}, exitFail,
			[]string{`pl009_bad.yaml:3:5: PL009 warning: policy for "a" allows calls but no rule reads the threat level`, "pl009_bad.yaml:18:5: PL009 warning"}, nil, nil},
		{"block level from the configuration", []string{"--config", advisory, lint + "pl009_bad.yaml"}, exitFail, []string{"PL009 warning"}, nil, nil},
		{"threat rules satisfy PL009", []string{"--config", advisory, lint + "pl009_ok.yaml"}, exitOK, nil, nil, []string{"PL009"}},
		{"bad block level", []string{"--request-block-level", "severe", seed}, exitUsage, nil, []string{"unknown threat level", "hint:"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", append([]string{"policy", "lint"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.stdoutHas {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stdoutNot {
				if strings.Contains(stdout, s) {
					t.Errorf("stdout has %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stderrHas {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}

func TestPolicyLintJSON(t *testing.T) {
	code, stdout, stderr := run(t, "", "policy", "lint", "--format", "json", "../policy/testdata/lint/pl008_bad.yaml")
	if code != exitOK {
		t.Fatalf("exit code = %d, want 0 (only info findings); stderr: %s", code, stderr)
	}
	var got []lintJSON
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var f lintJSON
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		f.Message, f.Hint = "", ""
		got = append(got, f)
	}
	file := "../policy/testdata/lint/pl008_bad.yaml"
	want := []lintJSON{
		{File: file, Line: 6, Col: 5, Code: "PL008", Severity: "info", Agent: "a", Rule: "deny_delete"},
		{File: file, Line: 10, Col: 5, Code: "PL008", Severity: "info", Agent: "a", Rule: "deny_drop_in_prod"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("json findings (-want +got):\n%s", diff)
	}
}
