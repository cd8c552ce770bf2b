package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseErrors: every malformed policy is rejected whole with file:line:col, the key and a hint.
func TestParseErrors(t *testing.T) {
	const head = "agent_id: a\nrules:\n  - name: r\n    tool: t\n    action: ALLOW\n"
	tests := []struct {
		name, src string
		want      string // prefix "p.yaml:L:C: key: " … checked with Contains on the first error
	}{
		{"unknown top-level key", "agent_id: a\nrulez: []\n", `p.yaml:2:1: rulez: unknown key "rulez"`},
		{"unknown rule key", head + "    conditons: []\n", `p.yaml:6:5: rules[0].conditons: unknown key "conditons"`},
		{"duplicate key", "agent_id: a\nagent_id: b\n", `p.yaml:2:1: agent_id: duplicate key "agent_id"`},
		{"duplicate key in condition", head + "    conditions:\n      - parameter: x\n        max_value: 1\n        max_value: 2\n", `p.yaml:9:9: rules[0].conditions[0].max_value: duplicate key`},
		{"wrong type agent_id", "agent_id: [a]\n", `p.yaml:1:11: agent_id: want a string, got a list`},
		{"wrong type max_value", head + "    conditions:\n      - parameter: x\n        max_value: \"90\"\n", `p.yaml:8:20: rules[0].conditions[0].max_value: want a number, got the string "90"`},
		{"wrong type must_have", head + "    conditions:\n      - user_permission: p\n        must_have: \"yes\"\n", `p.yaml:8:20: rules[0].conditions[0].must_have: want true or false`},
		{"invalid regex", head + "    conditions:\n      - parameter: x\n        match: \"(a\"\n", `p.yaml:8:16: rules[0].conditions[0].match: invalid regular expression "(a": missing closing )`},
		{"look-ahead is not RE2", head + "    conditions:\n      - parameter: x\n        match: \"(?!a)\"\n", `invalid regular expression`},
		{"invalid tool regex", "agent_id: a\nrules:\n  - name: r\n    tool: \"[z-a]\"\n    action: ALLOW\n", `p.yaml:4:11: rules[0].tool: invalid regular expression`},
		{"invalid time", head + "    conditions:\n      - time_of_day: {start: \"9am\", end: \"17:00\"}\n", `p.yaml:7:30: rules[0].conditions[0].time_of_day.start: invalid time of day "9am"`},
		{"time 24:00 as start", head + "    conditions:\n      - time_of_day: {start: \"24:00\", end: \"17:00\"}\n", `invalid time of day "24:00"`},
		{"minute 60", head + "    conditions:\n      - time_of_day: {start: \"09:60\", end: \"17:00\"}\n", `invalid time of day "09:60"`},
		{"invalid time zone", head + "    conditions:\n      - time_of_day: {start: \"09:00\", end: \"17:00\", timezone: \"Mars/Olympus\"}\n", `time_of_day.timezone: unknown time zone "Mars/Olympus"`},
		{"invalid policy time zone", "agent_id: a\ntimezone: EST5EDT6\n", `p.yaml:2:11: timezone: unknown time zone`},
		{"unknown day", head + "    conditions:\n      - time_of_day: {start: \"09:00\", end: \"17:00\", days: [mon, funday]}\n", `unknown day "funday"`},
		{"unknown action", "agent_id: a\nrules:\n  - name: r\n    tool: t\n    action: PERMIT\n", `p.yaml:5:13: rules[0].action: unknown decision "PERMIT"`},
		{"missing tool", "agent_id: a\nrules:\n  - name: r\n    action: ALLOW\n", `p.yaml:3:5: rules[0].tool: missing required key tool`},
		{"missing agent_id", "rules: []\n", `p.yaml:1:1: agent_id: missing required key agent_id`},
		{"duplicate rule name", head + "  - name: r\n    tool: u\n    action: DENY\n", `p.yaml:6:5: rules[1].name: duplicate rule name "r" (first at p.yaml:3:5)`},
		{"duplicate agent in one file", "agent_id: a\n---\nagent_id: a\n", `p.yaml:3:1: agent_id: second policy for agent "a" (the first is at p.yaml:1:1)`},
		{"unknown enforcement action", "agent_id: a\nenforcement:\n  - decision: ALLOW\n    action: run_it\n", `p.yaml:4:13: enforcement[0].action: unknown enforcement action "run_it"`},
		{"fail-open enforcement", "agent_id: a\nenforcement:\n  - decision: DENY\n    action: execute_tool\n", `enforcement[0].action: action execute_tool would let a DENY decision through (fail-open)`},
		{"unknown rule enforcement", "agent_id: a\nrules:\n  - name: r\n    tool: t\n    action: CONSTRAIN\n    enforcement: ask_nicely\n", `p.yaml:6:18: rules[0].enforcement: unknown rule enforcement "ask_nicely"`},
		{"rule enforcement on ALLOW", head + "    enforcement: require_human_approval\n", `rule enforcement "require_human_approval" on a ALLOW rule has no effect`},
		{"condition without kind", head + "    conditions:\n      - paramter: x\n        max_value: 1\n", `p.yaml:7:9: rules[0].conditions[0].paramter: condition has no kind key`},
		{"condition mixing kinds", head + "    conditions:\n      - parameter: x\n        threat_score: high\n", `p.yaml:8:9: rules[0].conditions[0].threat_score: condition mixes kinds parameter and threat_score`},
		{"parameter without test", head + "    conditions:\n      - parameter: x\n", `parameter condition has no test`},
		{"key of another kind", head + "    conditions:\n      - parameter: x\n        must_have: true\n", `p.yaml:8:9: rules[0].conditions[0].must_have: unknown key "must_have"`},
		{"unknown threat level", head + "    conditions:\n      - threat_score: severe\n", `unknown threat level "severe"`},
		{"unknown classification", head + "    conditions:\n      - data_classification: secret\n", `unknown classification level "secret"`},
		{"custom scale", "agent_id: a\nclassification_levels: [low, high]\nrules:\n  - name: r\n    tool: t\n    action: ALLOW\n    conditions:\n      - data_classification: internal\n", `unknown classification level "internal"`},
		{"bad call count", head + "    conditions:\n      - time_context:\n          call_count_exceeds: {window_minutes: 0, threshold: 5}\n", `window_minutes: integer 0 out of range`},
		{"unknown time_context key", head + "    conditions:\n      - time_context:\n          unusual_hours: true\n", `unknown key "unusual_hours"`},
		{"CEL does not type-check", head + "    conditions:\n      - expr: \"params.x + 1 == 'a'\"\n", `p.yaml:7:15: rules[0].conditions[0].expr: CEL expression does not compile`},
		{"CEL unknown variable", head + "    conditions:\n      - expr: \"request.x == 1\"\n", `undeclared reference to 'request'`},
		{"CEL non-bool", head + "    conditions:\n      - expr: \"size(tool)\"\n", `CEL expression has type int, want bool`},
		{"CEL dyn", head + "    conditions:\n      - expr: \"params.flag\"\n", `CEL expression has type dyn, want bool`},
		{"findings not a list", head + "    conditions:\n      - findings: sql_injection\n", `want a list of finding kinds`},
		{"anchors", "agent_id: &x a\n", `anchors and aliases are not allowed`},
		{"custom tag", "agent_id: !secret a\n", `custom YAML tag !secret`},
		{"syntax error", "agent_id: a\n  rules: [\n", `p.yaml:2:`},
		{"not a mapping", "- a\n- b\n", `p.yaml:1:1: want a mapping`},
		{"empty file", "", `no policy in file`},
		{"invalid UTF-8", "agent_id: \xff\n", `not valid UTF-8`},
		{"tab indentation", "agent_id: a\nrules:\n\t- name: r\n", `YAML syntax error`},
		{"unknown top-level key hint", "agent_id: a\ndefault_acton: DENY\n", `unknown key "default_acton"`},
		{"tool classification unknown level", "agent_id: a\ntool_classifications: {t: secret}\n", `tool_classifications.t: unknown classification level "secret"`},
		{"empty business hours", "agent_id: a\nbusiness_hours: {start: \"09:00\", end: \"09:00\"}\n", `empty business hours`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("p.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", f)
			}
			if f != nil {
				t.Errorf("Parse returned a partial file alongside the error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T is not an ErrorList", err)
			}
			if !strings.Contains(list[0].Error(), tc.want) {
				t.Errorf("first error\n  %s\nwant it to contain\n  %s\n(all: %v)", list[0].Error(), tc.want, err)
			}
			if list[0].Pos.Line == 0 {
				t.Errorf("error has no line: %v", list[0])
			}
		})
	}
}

func TestParseHints(t *testing.T) {
	_, err := Parse("p.yaml", []byte("agent_id: a\ndefault_acton: DENY\n"))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatal(err)
	}
	if !strings.Contains(list[0].Hint, `did you mean "default_action"?`) {
		t.Errorf("hint = %q", list[0].Hint)
	}
}

// TestParseAll reports every problem of a file, not only the first.
func TestParseAll(t *testing.T) {
	src := "agent_id: a\nrules:\n  - name: r\n    tool: \"(\"\n    action: NOPE\n  - name: s\n    tool: t\n    action: ALLOW\n    colour: red\n"
	_, err := Parse("p.yaml", []byte(src))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatal(err)
	}
	var got []string
	for _, e := range list {
		got = append(got, fmt.Sprintf("%d:%d %s", e.Pos.Line, e.Pos.Col, e.Key))
	}
	want := []string{"4:11 rules[0].tool", "5:13 rules[0].action", "9:5 rules[1].colour"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestParseValid(t *testing.T) {
	src := `agent_id: a
description: test
version: 1.2
default_action: deny
timezone: Europe/Berlin
business_hours: {start: "07:00", end: "19:00", days: [mon, tue, wed, thu, fri, sat]}
classification_levels: [open, team, secret]
tool_classifications: {vault_read: secret}
rules:
  - name: r1
    tool: [fetch_.*, "list_(a|b)"]
    not_tool: fetch_secrets
    action: allow
    conditions:
      - parameter: filter.region
        one_of: [eu, us]
      - parameter: name
        max_length: 10
        not_match: "\\.\\."
        equals: bob
      - time_of_day: {start: "22:00", end: "06:00", days: [Monday]}
      - user_permission: p
        must_have: false
      - time_context:
          unusual_hour: true
          or_call_count_exceeds: {window_minutes: 10, threshold: 3}
          call_count_exceeds: {window_minutes: 60, threshold: 1}
      - agent_role: r
      - invoking_user_attribute: dept
        matches_parameter: q.dept
      - data_classification: tool
      - expr: "size(params) > 0 && time.getHours() >= 0"
  - name: r2
    tool: x
    action: Log
    conditions:
      - findings: [sql_injection, pii.credit_card]
  - name: r3
    tool: y
    action: CONSTRAIN
    enforcement: require_human_approval
    conditions:
      - expr: "threat.rank >= 2"
---
agent_id: b
`
	f, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Policies) != 2 {
		t.Fatalf("%d policies", len(f.Policies))
	}
	p := f.Policies[0]
	if p.DefaultAction != Deny || !p.HasDefault || p.Version != "1.2" || p.Timezone != "Europe/Berlin" {
		t.Errorf("top level: %+v", p)
	}
	if got := []bool{p.Rules[0].Threat, p.Rules[1].Threat, p.Rules[2].Threat}; !cmp.Equal(got, []bool{false, true, true}) {
		t.Errorf("threat flags %v", got)
	}
	if p.Rules[1].Action != Log || len(p.Rules[0].Conditions) != 9 {
		t.Errorf("rules: %+v", p.Rules)
	}
	if p.Rules[0].Pos.Line != 10 || p.Rules[0].Conditions[2].Pos.Line != 21 {
		t.Errorf("positions: rule %v cond %v", p.Rules[0].Pos, p.Rules[0].Conditions[2].Pos)
	}
	if _, err := Compile(f); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicateAgentAcrossFiles(t *testing.T) {
	a, err := Parse("a.yaml", []byte("agent_id: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("b.yaml", []byte("# c\nagent_id: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(a, b)
	if err == nil || !strings.Contains(err.Error(), `b.yaml:2:1: agent_id: second policy for agent "x" (the first is at a.yaml:1:1)`) {
		t.Errorf("err = %v", err)
	}
}

// TestEveryErrorHasAHint: each problem the loader reports comes with a hint line.
func TestEveryErrorHasAHint(t *testing.T) {
	for _, src := range []string{
		"agent_id: a\nrules: {}\n", "agent_id: \"\"\n", "agent_id: a\nrules:\n  - name: r\n    tool: t\n    action: ALLOW\n    conditions:\n      - time_context: {call_count_exceeds: {window_minutes: 5}}\n",
		"agent_id: a\nenforcement: [{decision: ALLOW}]\n", "agent_id: a\nbusiness_hours: []\n",
	} {
		_, err := Parse("p.yaml", []byte(src))
		var list ErrorList
		if !errors.As(err, &list) {
			t.Fatalf("%q: %v", src, err)
		}
		for _, e := range list {
			if e.Hint == "" {
				t.Errorf("%q: error without hint: %v", src, e)
			}
		}
	}
}

// TestToolPatternCannotEscapeAnchoring: a fragment that is only valid once wrapped in ^(?:…)$
// is rejected, so `tool: "x)|(.*"` cannot turn into "anything".
func TestToolPatternCannotEscapeAnchoring(t *testing.T) {
	for _, pat := range []string{"x)|(.*", ")(", "a)(b"} {
		_, err := Parse("p.yaml", []byte(fmt.Sprintf("agent_id: a\nrules:\n  - {name: r, tool: %q, action: ALLOW}\n", pat)))
		if err == nil || !strings.Contains(err.Error(), "invalid regular expression") {
			t.Errorf("tool %q: err = %v", pat, err)
		}
	}
}

func TestToolPatternQuoted(t *testing.T) {
	set := mustSet(t, "agent_id: a\nrules:\n  - {name: r, tool: '\\Qab)|.*', action: ALLOW}\n")
	for tool, want := range map[string]Action{"ab)|.*": Allow, "ab)|.*x": Deny, "anything": Deny} {
		if d := set.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: tool, Time: tue10}); d.Action != want {
			t.Errorf("tool %q: %v, want %v", tool, d.Action, want)
		}
	}
}
