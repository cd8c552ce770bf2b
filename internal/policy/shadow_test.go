package policy

import (
	"strings"
	"testing"
	"time"
)

const shadowPolicy = `
agent_id: a
rules:
  - name: reads
    tool: read_.*
    action: ALLOW
  - name: new_bulk_rule
    tool: read_customers
    action: CONSTRAIN
    dry_run: true
    conditions:
      - parameter: limit
        min_value: 1000
  - name: wire
    tool: wire_money
    action: CONSTRAIN
    approval:
      required: 2
      expiry: 30m
      grant_ttl: 5m
`

func TestDryRunRuleNeverEnforces(t *testing.T) {
	set := mustSet(t, shadowPolicy)
	bulk := &Request{Agent: Agent{ID: "a"}, Tool: "read_customers", Params: map[string]any{"limit": 5000.0}}
	if d := set.Evaluate(bulk); d.Action != Allow || d.Rule != "reads" {
		t.Errorf("Evaluate = %+v: a dry-run rule must not change the enforced decision", d)
	}
	ex := set.Explain(bulk)
	if ex.Action != Allow || ex.WouldHave == nil || ex.WouldHave.Action != Constrain || ex.WouldHave.Rule != "new_bulk_rule" {
		t.Errorf("Explain = %+v, would have %+v: want ALLOW, would have CONSTRAIN by new_bulk_rule", ex.Decision, ex.WouldHave)
	}
	small := &Request{Agent: Agent{ID: "a"}, Tool: "read_customers", Params: map[string]any{"limit": 10.0}}
	if ex := set.Explain(small); ex.WouldHave != nil {
		t.Errorf("a dry-run rule that does not apply reported %+v", ex.WouldHave)
	}
}

func TestApprovalTerms(t *testing.T) {
	set := mustSet(t, shadowPolicy)
	d := set.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: "wire_money"})
	want := ApprovalSettings{Required: 2, Expiry: 30 * time.Minute, GrantTTL: 5 * time.Minute}
	if d.Action != Constrain || d.Approval != want {
		t.Errorf("Evaluate = %+v, want CONSTRAIN with %+v", d, want)
	}
	if d := set.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: "read_x"}); d.Approval != (ApprovalSettings{}) {
		t.Errorf("an ALLOW decision carries approval terms: %+v", d.Approval)
	}
}

func TestApprovalTermsErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"on an ALLOW rule", "agent_id: a\nrules:\n  - name: r\n    tool: t\n    action: ALLOW\n    approval: {required: 2}\n", "approval terms on a ALLOW rule"},
		{"bad duration", "agent_id: a\nrules:\n  - name: r\n    tool: t\n    action: CONSTRAIN\n    approval: {expiry: soon}\n", `invalid duration "soon"`},
		{"too many approvers", "agent_id: a\nrules:\n  - name: r\n    tool: t\n    action: CONSTRAIN\n    approval: {required: 50}\n", "out of range"},
		{"unknown key", "agent_id: a\nrules:\n  - name: r\n    tool: t\n    action: CONSTRAIN\n    approval: {quorum: 2}\n", "quorum"},
		{"dry_run not a bool", "agent_id: a\nrules:\n  - name: r\n    tool: t\n    action: CONSTRAIN\n    dry_run: yes please\n", "dry_run"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "p.yaml:6:") {
				t.Errorf("error %q: want %q at p.yaml:6", err, tc.want)
			}
		})
	}
}
