package policy

import (
	"regexp"
	"regexp/syntax"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// The contract says `.*` matches every tool. A name with a newline (or any other character `.`
// does not match without the s flag) must not slip past `.*` rules — threat rules included.
func TestDotStarMatchesNewlineNames(t *testing.T) {
	set := mustSet(t, `agent_id: a
default_action: ALLOW
rules:
  - name: threat gate
    tool: ".*"
    action: CONSTRAIN
    conditions:
      - threat_score: high
  - name: no exports
    tool: "export_.*"
    action: DENY
  - name: no deletes
    tool: "(?:delete|drop)_[a-z\n]+"
    action: DENY
  - name: all of it
    tool: "x.*y"
    action: DENY
`)
	tests := []struct {
		name, tool string
		level      threat.Level
		want       Action
	}{
		{"threat rule, plain name", "send_email", threat.High, Constrain},
		{"threat rule, name with a newline", "send_email\nx", threat.High, Constrain},
		{"threat rule, name that is a newline", "\n", threat.High, Constrain},
		{"threat rule, carriage return", "send\remail", threat.High, Constrain},
		{"prefix rule, plain", "export_all", threat.None, Deny},
		{"prefix rule, newline after the prefix", "export_\nall", threat.None, Deny},
		{"regexp rule, newline", "x\ny", threat.None, Deny},
		{"regexp rule with class", "delete_a\nb", threat.None, Deny},
		{"not covered", "fetch", threat.None, Allow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := &Request{Agent: Agent{ID: "a"}, Tool: tc.tool, Params: map[string]any{}, Time: tue10, Threat: tc.level}
			if d := set.Evaluate(req); d.Action != tc.want {
				t.Errorf("Evaluate(%q) = %s (rule %q), want %s", tc.tool, d.Action, d.Rule, tc.want)
			}
			if ex := set.Explain(req); ex.Decision.Action != tc.want {
				t.Errorf("Explain(%q) = %s, want %s", tc.tool, ex.Decision.Action, tc.want)
			}
		})
	}
	if !set.MayAllow("a", "fetch") || set.MayAllow("a", "export_\nall") {
		t.Error("MayAllow disagrees with the tool patterns")
	}
}

// Every fast path of the tool matcher agrees with the regexp the pattern means: the whole name,
// with `.` matching every character.
func TestToolMatcherAgreesWithRegexp(t *testing.T) {
	patterns := []string{".*", ".+", "fetch_.*", "fetch_.+", "(?-s:.*)", "(?-s)fetch_.*", "a|b", "fetch_sales_data",
		"x.*y", "(?s).*", "(?i)fetch.*", "[a-z]+", "", "a\nb", `\Qa.b\E`, "(?m)^a$"}
	names := []string{"", "a", "b", "\n", "a\nb", "fetch_", "fetch_\n", "fetch_sales_data", "FETCH_x\ny", "x\ny", "xy", "a.b", "\r", "fetch_a\nb"}
	for _, p := range patterns {
		ms, err := compileToolPattern(p)
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		tree, err := syntax.Parse(p, syntax.Perl|syntax.DotNL)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`^(?:` + tree.String() + `)$`)
		for _, n := range names {
			got := false
			for i := range ms {
				if ms[i].match(n) {
					got = true
				}
			}
			if want := re.MatchString(n); got != want {
				t.Errorf("pattern %q, name %q: matcher %v, regexp %v", p, n, got, want)
			}
		}
	}
}
