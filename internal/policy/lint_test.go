package policy

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lintGot is the part of a finding the table compares; positions are checked separately.
type lintGot struct {
	Code     string
	Severity LintSeverity
	Rule     string
}

func lintFixture(t *testing.T, path string) []LintFinding {
	t.Helper()
	set, err := Load(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return Lint(set.Files()...)
}

func TestLintFixtures(t *testing.T) {
	W, I, E := LintWarning, LintInfo, LintError
	tests := []struct {
		file string
		want []lintGot
	}{
		{"pl001_bad.yaml", []lintGot{{"PL001", W, "contradictory"}, {"PL001", W, "across_conditions"}, {"PL001", W, "one_of_outside_bounds"}}},
		{"pl001_ok.yaml", nil},
		{"pl002_bad.yaml", []lintGot{{"PL002", W, "empty_window"}, {"PL002", W, "morning_and_evening"}, {"PL002", W, "weekdays_and_weekend"}}},
		{"pl002_ok.yaml", nil},
		{"pl003_bad.yaml", []lintGot{{"PL003", W, "too_short"}}},
		{"pl003_ok.yaml", nil},
		{"pl004_bad.yaml", []lintGot{
			{"PL004", W, "match_and_not_match"}, {"PL004", W, "disjoint_alternations"}, {"PL004", W, "one_of_fails_match"},
			{"PL004", W, "equals_not_in_one_of"}, {"PL004", W, "not_match_excludes_all"},
		}},
		{"pl004_ok.yaml", nil},
		{"pl005_bad.yaml", []lintGot{{"PL005", W, "string_and_number"}}},
		{"pl005_ok.yaml", nil},
		{"pl006_bad.yaml", []lintGot{
			{"PL006", W, "narrow_allow"}, {"PL008", I, "deny_risky"}, {"PL006", W, "constrain_critical"},
			{"PL006", W, "late_morning"}, {"PL006", W, "allow_purge"},
		}},
		{"pl006_ok.yaml", nil},
		{"pl007_bad.yaml", []lintGot{{"PL007", E, "allow_everything"}, {"PL006", W, "allow_everything_grouped"}, {"PL007", E, "allow_everything_grouped"}}},
		{"pl007_ok.yaml", nil},
		{"pl008_bad.yaml", []lintGot{{"PL008", I, "deny_delete"}, {"PL008", I, "deny_drop_in_prod"}}},
		{"pl008_ok.yaml", nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "lint", tt.file)
			findings := lintFixture(t, path)
			var got []lintGot
			for _, f := range findings {
				got = append(got, lintGot{f.Code, f.Severity, f.Rule})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s\nall: %v", diff, findings)
			}
			checkLintPositions(t, path, findings)
		})
	}
}

// checkLintPositions: rule-level findings point at the rule's first key; condition-level ones
// at a line inside the rule. Every finding has a message and a hint.
func checkLintPositions(t *testing.T, path string, findings []LintFinding) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nameLine := map[string]int{}
	var order []int
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if s := strings.TrimSpace(sc.Text()); strings.HasPrefix(s, "- name: ") {
			nameLine[strings.Trim(strings.TrimPrefix(s, "- name: "), `"`)] = n
			order = append(order, n)
		}
	}
	for _, fd := range findings {
		start := nameLine[fd.Rule]
		if start == 0 {
			t.Errorf("%v: rule %q not in %s", fd, fd.Rule, path)
			continue
		}
		end := 1 << 30
		for _, l := range order {
			if l > start && l < end {
				end = l
			}
		}
		switch fd.Code {
		case LintShadowed, LintAllowAll, LintPointlessDeny, LintNoThreatRule:
			if fd.Pos.Line != start || fd.Pos.Col != 5 || fd.Pos.File != path {
				t.Errorf("%v: want position %s:%d:5", fd, path, start)
			}
		default:
			if fd.Pos.Line <= start || fd.Pos.Line >= end || fd.Pos.File != path {
				t.Errorf("%v: want a line inside rule %q (%d..%d)", fd, fd.Rule, start, end)
			}
		}
		if fd.Message == "" || fd.Hint == "" || fd.Agent == "" {
			t.Errorf("%v: message, hint and agent must be set: %+v", fd, fd)
		}
	}
}

// TestLintNoThreatRule: with inspection.request_block_level none, a policy that allows calls
// and has no enforced rule tightening on the threat level or findings is a PL009 warning at its
// first ALLOW or LOG rule (a shadow threat rule does not count); under the default level
// (critical) there is no such finding.
func TestLintNoThreatRule(t *testing.T) {
	none := LintOptions{}
	for _, tt := range []struct {
		file string
		want []lintGot
	}{
		{"pl009_bad.yaml", []lintGot{{"PL009", LintWarning, "allow_read"}, {"PL009", LintWarning, "allow_report"}, {"PL008", LintInfo, "deny_delete"}}},
		{"pl009_ok.yaml", []lintGot{{"PL008", LintInfo, "deny_delete"}}},
	} {
		path := filepath.Join("testdata", "lint", tt.file)
		set, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		findings := LintWith(none, set.Files()...)
		var got []lintGot
		for _, f := range findings {
			got = append(got, lintGot{f.Code, f.Severity, f.Rule})
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s\nall: %v", tt.file, diff, findings)
		}
		checkLintPositions(t, path, findings)
		for _, f := range Lint(set.Files()...) {
			if f.Code == LintNoThreatRule {
				t.Errorf("%s: PL009 at the default block level: %v", tt.file, f)
			}
		}
	}
	// default_action ALLOW and no rules at all: the finding points at the policy.
	f, err := Parse("open.yaml", []byte("agent_id: open\ndefault_action: ALLOW\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := LintWith(none, f); len(got) != 1 || got[0].Code != LintNoThreatRule || got[0].Pos.Line != 1 || got[0].Agent != "open" {
		t.Errorf("default ALLOW: %v", got)
	}
}

// TestLintSeed: the seed's examples lint as the brief expects — the only finding is that
// delete_operations is a pointless DENY under default DENY, and it is info (not a failure).
func TestLintSeed(t *testing.T) {
	findings := lintFixture(t, filepath.Join("testdata", "seed"))
	var got []lintGot
	for _, f := range findings {
		got = append(got, lintGot{f.Code, f.Severity, f.Rule})
	}
	want := []lintGot{{"PL008", LintInfo, "delete_operations"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("seed findings (-want +got):\n%s", diff)
	}
}

// TestLintNegativeMaxLength covers PL003's negative case, which the parser already rejects in
// files; a policy built in Go can still carry it.
func TestLintNegativeMaxLength(t *testing.T) {
	n := -1
	p := &Policy{AgentID: "a", Rules: []*Rule{{Name: "r", Tools: []Pattern{{Source: "t"}}, Action: Allow,
		Conditions: []*Condition{{Pos: Pos{File: "x.yaml", Line: 3, Col: 7}, Kind: KindParameter, Parameter: &ParameterCond{Path: "s", MaxLength: &n}}}}}}
	got := Lint(&File{Name: "x.yaml", Policies: []*Policy{p}})
	if len(got) != 1 || got[0].Code != LintMaxLength || got[0].Pos.Line != 3 {
		t.Errorf("got %v, want one PL003 at line 3", got)
	}
}

func TestFiniteLanguage(t *testing.T) {
	tests := []struct {
		src  string
		want []string
		ok   bool
	}{
		{`^(monthly|quarterly|annual)$`, []string{"monthly", "quarterly", "annual"}, true},
		{`^abc$`, []string{"abc"}, true},
		{`\Aa[bc]?\z`, []string{"a", "ab", "ac"}, true},
		{`^x{2}$`, []string{"xx"}, true},
		{`^(a|b){1,2}$`, []string{"a", "b", "aa", "ab", "ba", "bb"}, true},
		{`^[a-z]+$`, nil, false},
		{`monthly`, nil, false},       // unanchored: any string containing it
		{`^monthly`, nil, false},      // open end
		{`(?i)^monthly$`, nil, false}, // case folding is not enumerated
		{`^.$`, nil, false},
	}
	for _, tt := range tests {
		got, ok := finiteLanguage(tt.src)
		if ok != tt.ok {
			t.Errorf("finiteLanguage(%q) ok = %v, want %v", tt.src, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		gotSet, wantSet := map[string]bool{}, map[string]bool{}
		for _, s := range got {
			gotSet[s] = true
		}
		for _, s := range tt.want {
			wantSet[s] = true
		}
		if diff := cmp.Diff(wantSet, gotSet); diff != "" {
			t.Errorf("finiteLanguage(%q) (-want +got):\n%s", tt.src, diff)
		}
	}
}

func TestMatchesEverything(t *testing.T) {
	for src, want := range map[string]bool{
		`.*`: true, `.+`: true, `(.*)`: true, `(?s).*`: true, `^.*$`: true, `(?:.+)`: true,
		`a.*`: false, `.*_admin`: false, `.`: false, `[a-z]*`: false, `fetch`: false,
	} {
		if got := matchesEverything(src); got != want {
			t.Errorf("matchesEverything(%q) = %v, want %v", src, got, want)
		}
	}
}

// FuzzLint: lint never panics on anything the parser accepts.
func FuzzLint(f *testing.F) {
	for _, name := range []string{"pl004_bad.yaml", "pl006_bad.yaml", "pl008_ok.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", "lint", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("agent_id: a\nrules:\n  - name: r\n    tool: \"(a|b){3}\"\n    action: DENY\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		for _, fd := range Lint(file) {
			if fd.Code == "" || fd.Message == "" {
				t.Errorf("empty finding %+v", fd)
			}
		}
	})
}
