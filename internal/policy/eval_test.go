package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

func mustSet(t testing.TB, src string) *Set {
	t.Helper()
	f, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, src)
	}
	s, err := Compile(f)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}

// oneRule is a policy for agent "a" with one ALLOW rule for tool "t" holding the given conditions.
func oneRule(conds string) string {
	return "agent_id: a\ntimezone: UTC\nrules:\n  - name: r\n    tool: t\n    action: ALLOW\n    conditions:\n" + indent(conds, "      ")
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

var tue10 = time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC) // a Tuesday

func req(params map[string]any) *Request {
	return &Request{Agent: Agent{ID: "a"}, Tool: "t", Params: params, Time: tue10}
}

func TestConditions(t *testing.T) {
	user := func(r *Request, perms []string, attrs map[string][]string) *Request {
		r.User = &User{ID: "u", Permissions: perms, Attributes: attrs}
		return r
	}
	atTime := func(r *Request, s string) *Request { r.Time = at(s); return r }
	tests := []struct {
		name  string
		conds string
		req   *Request
		want  bool
	}{
		{"match unanchored", "- parameter: q\n  match: ab", req(map[string]any{"q": "xaby"}), true},
		{"match anchored fails", "- parameter: q\n  match: ^ab$", req(map[string]any{"q": "xaby"}), false},
		{"match on a number is false", "- parameter: q\n  match: \"1\"", req(map[string]any{"q": 1.0}), false},
		{"max_value inclusive", "- parameter: n\n  max_value: 5", req(map[string]any{"n": 5.0}), true},
		{"min_value inclusive", "- parameter: n\n  min_value: 5", req(map[string]any{"n": 5}), true},
		{"min_value below", "- parameter: n\n  min_value: 5", req(map[string]any{"n": 4.999}), false},
		{"number as string is false", "- parameter: n\n  max_value: 5", req(map[string]any{"n": "1"}), false},
		{"missing parameter is false", "- parameter: n\n  max_value: 5", req(map[string]any{}), false},
		{"nil params", "- parameter: n\n  max_value: 5", req(nil), false},
		{"dotted path", "- parameter: filter.region\n  equals: eu", req(map[string]any{"filter": map[string]any{"region": "eu"}}), true},
		{"dotted path through a scalar", "- parameter: filter.region\n  equals: eu", req(map[string]any{"filter": "eu"}), false},
		{"array every element", "- parameter: ids\n  max_value: 10", req(map[string]any{"ids": []any{1.0, 10.0}}), true},
		{"array one element fails", "- parameter: ids\n  max_value: 10", req(map[string]any{"ids": []any{1.0, 11.0}}), false},
		{"empty array is false", "- parameter: ids\n  max_value: 10", req(map[string]any{"ids": []any{}}), false},
		{"nested array element is false", "- parameter: ids\n  max_value: 10", req(map[string]any{"ids": []any{[]any{1.0}}}), false},
		{"string slice", "- parameter: tags\n  one_of: [a, b]", req(map[string]any{"tags": []string{"a", "b"}}), true},
		{"one_of miss", "- parameter: q\n  one_of: [a, b]", req(map[string]any{"q": "c"}), false},
		{"one_of numbers", "- parameter: q\n  one_of: [1, 2]", req(map[string]any{"q": 2.0}), true},
		{"equals bool", "- parameter: q\n  equals: true", req(map[string]any{"q": true}), true},
		{"equals type mismatch", "- parameter: q\n  equals: true", req(map[string]any{"q": "true"}), false},
		{"max_length counts characters", "- parameter: q\n  max_length: 3", req(map[string]any{"q": "äöü"}), true},
		{"max_length exceeded", "- parameter: q\n  max_length: 3", req(map[string]any{"q": "abcd"}), false},
		{"not_match", "- parameter: path\n  not_match: \"\\\\.\\\\.\"", req(map[string]any{"path": "/a/../b"}), false},
		{"not_match ok", "- parameter: path\n  not_match: \"\\\\.\\\\.\"", req(map[string]any{"path": "/a/b"}), true},
		{"operators combine", "- parameter: q\n  match: ^[a-z]+$\n  max_length: 3", req(map[string]any{"q": "abcd"}), false},

		{"time window", "- time_of_day: {start: \"09:00\", end: \"17:00\"}", req(nil), true},
		{"time window end exclusive", "- time_of_day: {start: \"09:00\", end: \"10:00\"}", req(nil), false},
		{"time window end 24:00", "- time_of_day: {start: \"09:00\", end: \"24:00\"}", atTime(req(nil), "2026-03-10T23:59:00Z"), true},
		{"empty window never holds", "- time_of_day: {start: \"10:00\", end: \"10:00\"}", req(nil), false},
		{"wrap before midnight", "- time_of_day: {start: \"22:00\", end: \"06:00\"}", atTime(req(nil), "2026-03-10T23:00:00Z"), true},
		{"wrap after midnight", "- time_of_day: {start: \"22:00\", end: \"06:00\"}", atTime(req(nil), "2026-03-11T05:59:00Z"), true},
		{"wrap outside", "- time_of_day: {start: \"22:00\", end: \"06:00\"}", atTime(req(nil), "2026-03-11T06:00:00Z"), false},
		{"days: Tuesday listed", "- time_of_day: {start: \"09:00\", end: \"17:00\", days: [tue]}", req(nil), true},
		{"days: Tuesday not listed", "- time_of_day: {start: \"09:00\", end: \"17:00\", days: [mon, wed]}", req(nil), false},
		{"wrap belongs to start day", "- time_of_day: {start: \"22:00\", end: \"06:00\", days: [fri]}", atTime(req(nil), "2026-03-14T02:00:00Z"), true},
		{"wrap start day not listed", "- time_of_day: {start: \"22:00\", end: \"06:00\", days: [sat]}", atTime(req(nil), "2026-03-14T02:00:00Z"), false},
		{"condition time zone", "- time_of_day: {start: \"09:00\", end: \"10:00\", timezone: Asia/Tokyo}", atTime(req(nil), "2026-03-10T00:30:00Z"), true},

		{"threat at least", "- threat_score: medium", &Request{Agent: Agent{ID: "a"}, Tool: "t", Time: tue10, Threat: threat.High}, true},
		{"threat below", "- threat_score: medium", &Request{Agent: Agent{ID: "a"}, Tool: "t", Time: tue10, Threat: threat.Low}, false},
		{"findings any", "- findings: [sql_injection, pii.credit_card]", &Request{Agent: Agent{ID: "a"}, Tool: "t", Time: tue10, Findings: []string{"x", "pii.credit_card"}}, true},
		{"findings none", "- findings: [sql_injection]", &Request{Agent: Agent{ID: "a"}, Tool: "t", Time: tue10, Findings: []string{"x"}}, false},

		{"user permission", "- user_permission: p", user(req(nil), []string{"p"}, nil), true},
		{"user permission missing", "- user_permission: p", user(req(nil), []string{"q"}, nil), false},
		{"no user has no permissions", "- user_permission: p", req(nil), false},
		{"must_have false", "- user_permission: p\n  must_have: false", user(req(nil), []string{"q"}, nil), true},
		{"must_have false, no user", "- user_permission: p\n  must_have: false", req(nil), true},

		{"agent role", "- agent_role: r", &Request{Agent: Agent{ID: "a", Roles: []string{"r"}}, Tool: "t", Time: tue10}, true},
		{"agent role permission direct", "- agent_role: r\n  has_permission: p", &Request{Agent: Agent{ID: "a", Roles: []string{"r"}, Permissions: []string{"p"}}, Tool: "t", Time: tue10}, true},
		{"agent role permission via role", "- agent_role: r\n  has_permission: p", &Request{Agent: Agent{ID: "a", Roles: []string{"r"}, RolePermissions: map[string][]string{"r": {"p"}}}, Tool: "t", Time: tue10}, true},
		{"agent permission via another role", "- agent_role: r\n  has_permission: p", &Request{Agent: Agent{ID: "a", Roles: []string{"r", "s"}, RolePermissions: map[string][]string{"s": {"p"}}}, Tool: "t", Time: tue10}, false},

		{"user attribute", "- invoking_user_attribute: region\n  matches_parameter: region", user(req(map[string]any{"region": "eu"}), nil, map[string][]string{"region": {"us", "eu"}}), true},
		{"user attribute numeric param", "- invoking_user_attribute: region\n  matches_parameter: region", user(req(map[string]any{"region": 1.0}), nil, map[string][]string{"region": {"1"}}), false},
		{"user attribute no user", "- invoking_user_attribute: region\n  matches_parameter: region", req(map[string]any{"region": "eu"}), false},

		{"classification custom tool level", "- data_classification: tool", user(&Request{Agent: Agent{ID: "a"}, Tool: "t", Time: tue10, ToolClassification: "confidential"}, nil, map[string][]string{"clearance": {"confidential"}}), true},
		{"classification tool level above", "- data_classification: tool", user(&Request{Agent: Agent{ID: "a"}, Tool: "t", Time: tue10, ToolClassification: "restricted"}, nil, map[string][]string{"clearance": {"confidential"}}), false},
		{"classification unclassified tool", "- data_classification: tool", user(req(nil), nil, map[string][]string{"clearance": {"restricted"}}), false},
		{"classification unknown clearance", "- data_classification: public", user(req(nil), nil, map[string][]string{"clearance": {"top-secret"}}), false},

		{"expr", "- expr: \"params.n > 3 && tool == 't' && agent.id == 'a'\"", req(map[string]any{"n": 4.0}), true},
		{"expr time", "- expr: \"time.getHours() == 10\"", req(nil), true},
		{"expr user attributes", "- expr: \"'eu' in user.attributes.region\"", user(req(nil), nil, map[string][]string{"region": {"eu"}}), true},
		{"expr error in ALLOW rule is false", "- expr: \"params.missing == 1\"", req(nil), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set := mustSet(t, oneRule(tc.conds))
			// A threat rule never loosens the default DENY, so read whether it applies from the trace.
			ex := set.Explain(tc.req)
			if len(ex.Rules) != 1 {
				t.Fatalf("trace: %+v", ex.Rules)
			}
			if got := ex.Rules[0].Applies; got != tc.want {
				t.Errorf("rule applies = %v, want %v\n%+v", got, tc.want, ex.Rules)
			}
			if !ex.Rules[0].Threat && (set.Evaluate(tc.req).Action == Allow) != tc.want {
				t.Errorf("Evaluate disagrees with the trace")
			}
		})
	}
}

func TestTimeContext(t *testing.T) {
	set := mustSet(t, `agent_id: a
timezone: America/New_York
business_hours: {start: "09:00", end: "17:00", days: [mon, tue, wed, thu, fri]}
rules:
  - name: odd
    tool: t
    action: CONSTRAIN
    conditions:
      - time_context: {unusual_hour: true}
  - name: both
    tool: u
    action: CONSTRAIN
    conditions:
      - time_context:
          unusual_hour: true
          call_count_exceeds: {window_minutes: 10, threshold: 1}
  - name: usual
    tool: v
    action: CONSTRAIN
    conditions:
      - time_context: {unusual_hour: false}
`)
	now := at("2026-03-10T10:00:00-04:00")
	night := at("2026-03-10T20:00:00-04:00")
	baseline := &CallList{}
	for i := range BaselineMinCalls {
		baseline.Calls = append(baseline.Calls, Call{Tool: "x", Time: at("2026-01-01T18:00:00Z").Add(time.Duration(i) * 24 * time.Hour)})
	}
	tests := []struct {
		name string
		r    *Request
		want Action
	}{
		{"business hours", &Request{Agent: Agent{ID: "a"}, Tool: "t", Time: now}, Deny},
		{"after hours", &Request{Agent: Agent{ID: "a"}, Tool: "t", Time: night}, Constrain},
		{"learned baseline: 10:00 NY (14Z) is a rare hour", &Request{Agent: Agent{ID: "a"}, Tool: "t", Time: now, History: baseline}, Constrain},
		{"learned baseline: usual hour", &Request{Agent: Agent{ID: "a"}, Tool: "t", Time: at("2026-03-10T14:00:00-04:00"), History: baseline}, Deny},
		{"and: unusual but one call", &Request{Agent: Agent{ID: "a"}, Tool: "u", Time: night}, Deny},
		{"and: unusual and two calls", &Request{Agent: Agent{ID: "a"}, Tool: "u", Time: night, History: calls("u", night, 3)}, Constrain},
		{"and: two calls but usual", &Request{Agent: Agent{ID: "a"}, Tool: "u", Time: now, History: calls("u", now, 3)}, Deny},
		{"unusual_hour false at a usual hour", &Request{Agent: Agent{ID: "a"}, Tool: "v", Time: now}, Constrain},
	}
	for _, tc := range tests {
		if d := set.Evaluate(tc.r); d.Action != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, d.Action, tc.want)
		}
	}
}

func TestCombining(t *testing.T) {
	set := mustSet(t, `agent_id: a
rules:
  - {name: allow_all_fetch, tool: "fetch_.*", action: ALLOW}
  - {name: log_fetch_x, tool: fetch_x, action: LOG}
  - {name: log_fetch_x_again, tool: fetch_x, action: LOG}
  - {name: constrain_secret, tool: [fetch_secret, "vault_.*"], action: CONSTRAIN}
  - {name: deny_all_but_pay, tool: ".*", not_tool: "(pay|fetch_.*|vault_.*|b)", action: DENY}
  - {name: threat_allow, tool: fetch_y, action: ALLOW, conditions: [{threat_score: low}]}
  - {name: threat_log, tool: "fetch_.*", action: LOG, conditions: [{findings: [pii.email]}]}
  - {name: cel_error_deny, tool: b, action: DENY, conditions: [{expr: "params.nope == 1"}]}
  - {name: b_allow, tool: b, action: ALLOW}
---
agent_id: open
default_action: ALLOW
rules:
  - {name: watch, tool: t, action: LOG, conditions: [{threat_score: medium}]}
`)
	tests := []struct {
		name string
		r    *Request
		want Decision
	}{
		{"ALLOW and LOG → LOG, first in file order", &Request{Agent: Agent{ID: "a"}, Tool: "fetch_x"}, Decision{Action: Log, Rule: "log_fetch_x", Enforcement: EnforceRecordAllow, RuleEnforcement: ""}},
		{"pattern ALLOW", &Request{Agent: Agent{ID: "a"}, Tool: "fetch_y"}, Decision{Action: Allow, Rule: "allow_all_fetch", Enforcement: EnforceExecute, RuleEnforcement: ""}},
		{"CONSTRAIN beats ALLOW", &Request{Agent: Agent{ID: "a"}, Tool: "fetch_secret"}, Decision{Action: Constrain, Rule: "constrain_secret", Enforcement: EnforceQueueApproval, RuleEnforcement: ""}},
		{"tool list regex", &Request{Agent: Agent{ID: "a"}, Tool: "vault_read"}, Decision{Action: Constrain, Rule: "constrain_secret", Enforcement: EnforceQueueApproval, RuleEnforcement: ""}},
		{"not_tool excludes", &Request{Agent: Agent{ID: "a"}, Tool: "pay"}, Decision{Action: Deny, Rule: "", Enforcement: EnforceReturnError, RuleEnforcement: ""}},
		{"DENY for everything else", &Request{Agent: Agent{ID: "a"}, Tool: "other"}, Decision{Action: Deny, Rule: "deny_all_but_pay", Enforcement: EnforceReturnError, RuleEnforcement: ""}},
		{"threat ALLOW cannot loosen", &Request{Agent: Agent{ID: "a"}, Tool: "fetch_y", Threat: threat.High}, Decision{Action: Allow, Rule: "allow_all_fetch", Enforcement: EnforceExecute, RuleEnforcement: ""}},
		{"threat LOG escalates ALLOW", &Request{Agent: Agent{ID: "a"}, Tool: "fetch_y", Findings: []string{"pii.email"}}, Decision{Action: Log, Rule: "threat_log", Enforcement: EnforceRecordAllow, RuleEnforcement: ""}},
		{"threat LOG ties with earlier base LOG", &Request{Agent: Agent{ID: "a"}, Tool: "fetch_x", Findings: []string{"pii.email"}}, Decision{Action: Log, Rule: "log_fetch_x", Enforcement: EnforceRecordAllow, RuleEnforcement: ""}},
		{"CEL error in a DENY rule denies", &Request{Agent: Agent{ID: "a"}, Tool: "b"}, Decision{Action: Deny, Rule: "cel_error_deny", Enforcement: EnforceReturnError, RuleEnforcement: ""}},
		{"default ALLOW", &Request{Agent: Agent{ID: "open"}, Tool: "x"}, Decision{Action: Allow, Rule: "", Enforcement: EnforceExecute, RuleEnforcement: ""}},
		{"threat rule escalates default ALLOW", &Request{Agent: Agent{ID: "open"}, Tool: "t", Threat: threat.Medium}, Decision{Action: Log, Rule: "watch", Enforcement: EnforceRecordAllow, RuleEnforcement: ""}},
		{"unknown agent", &Request{Agent: Agent{ID: "ghost"}, Tool: "x"}, Decision{Action: Deny, Rule: "", Enforcement: EnforceReturnError, RuleEnforcement: ""}},
		// Tool patterns have the s flag: `.` matches a newline, so `.*` covers every name (the guard
		// refuses such names before the policy, but the engine keeps the contract on its own).
		{"tool name with newline matches .* DENY", &Request{Agent: Agent{ID: "a"}, Tool: "other\nx"}, Decision{Action: Deny, Rule: "deny_all_but_pay", Enforcement: EnforceReturnError, RuleEnforcement: ""}},
		{"tool name with newline matches fetch_.* and its not_tool", &Request{Agent: Agent{ID: "a"}, Tool: "fetch_\nx"}, Decision{Action: Allow, Rule: "allow_all_fetch", Enforcement: EnforceExecute, RuleEnforcement: ""}},
	}
	for _, tc := range tests {
		tc.r.Time = tue10
		if diff := cmp.Diff(tc.want, set.Evaluate(tc.r)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
		if diff := cmp.Diff(tc.want, set.Explain(tc.r).Decision); diff != "" {
			t.Errorf("%s: explain (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestNilSafety(t *testing.T) {
	var s *Set
	if d := s.Evaluate(&Request{}); d.Action != Deny {
		t.Errorf("nil set: %v", d)
	}
	set := mustSet(t, oneRule("- parameter: q\n  equals: x"))
	if d := set.Evaluate(nil); d.Action != Deny {
		t.Errorf("nil request: %v", d)
	}
	var zero Decision
	if zero.Action != Deny {
		t.Errorf("the zero Decision must deny")
	}
}

func TestToolCacheBounded(t *testing.T) {
	set := mustSet(t, "agent_id: a\nrules:\n  - {name: r, tool: \"x.*\", action: ALLOW}\n")
	p := set.agents["a"]
	for i := range maxCachedTools + 100 {
		set.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: fmt.Sprintf("x%d", i), Time: tue10})
	}
	if n := len(*p.cache.Load()); n != maxCachedTools {
		t.Errorf("cache holds %d names, want the bound %d", n, maxCachedTools)
	}
	if d := set.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: "x-uncached-name", Time: tue10}); d.Action != Allow {
		t.Errorf("past the cache bound: %v", d)
	}
}

func TestEvaluateZeroAllocs(t *testing.T) {
	set, err := Load("testdata/seed/01_deny_by_default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := sales("2026-03-10T10:00:00-04:00", "monthly", 30.0, threat.None)
	if n := testing.AllocsPerRun(100, func() { set.Evaluate(r) }); n != 0 {
		t.Errorf("Evaluate allocates %v times per call", n)
	}
}

// TestZoneClock compares the cached local clock with time.Time.In across DST changes, far past
// and future instants and many zones, in an order that makes the cache miss and hit.
func TestZoneClock(t *testing.T) {
	for _, name := range []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Chatham", "America/St_Johns"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		z := newZoneClock(loc)
		start := time.Date(1901, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 5000 {
			// Steps of a prime number of minutes, with jumps back and forth.
			tm := start.Add(time.Duration(i*7919) * time.Minute * 7)
			if i%3 == 0 {
				tm = time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC).Add(time.Duration(i%1440) * time.Minute)
			}
			min, wd := z.local(tm)
			l := tm.In(loc)
			if want := Clock(l.Hour()*60 + l.Minute()); min != want || wd != l.Weekday() {
				t.Fatalf("%s %v: got %v %v, want %v %v", name, tm, min, wd, want, l.Weekday())
			}
		}
	}
}

// TestConcurrentEvaluate runs evaluations (with memo insertions and zone-period changes) from
// many goroutines; with -race it checks the set is safe for concurrent use.
func TestConcurrentEvaluate(t *testing.T) {
	set, err := Load("testdata/seed")
	if err != nil {
		t.Fatal(err)
	}
	cases := seedCases()
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 300 {
				c := cases[(g*31+i)%len(cases)]
				if d := set.Evaluate(c.req); d.Action != c.want {
					t.Errorf("%s: %s, want %s", c.name, d.Action, c.want)
					return
				}
				set.Evaluate(&Request{Agent: Agent{ID: "report-generator-v1"}, Tool: fmt.Sprintf("tool_%d_%d", g, i), Time: c.req.Time})
			}
		}()
	}
	for range 8 {
		<-done
	}
}
