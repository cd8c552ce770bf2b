package policy

import (
	"strings"
	"testing"
)

// Explanations quote parameters as Display shows them (secrets replaced); the conditions still
// test the real values.
func TestExplainQuotesDisplay(t *testing.T) {
	s := mustSet(t, `agent_id: a
default_action: DENY
rules:
  - name: r
    tool: send
    action: ALLOW
    conditions:
      - parameter: to
        match: "^AKIA"
`)
	req := &Request{Agent: Agent{ID: "a"}, Tool: "send", Params: map[string]any{"to": "AKIAIOSFODNN7EXAMPLE"},
		Display: func(path []string) any { return "[REDACTED:aws_access_key]" }}
	ex := s.Explain(req)
	if ex.Decision.Action != Allow {
		t.Fatalf("decision %v: the condition must test the real value", ex.Decision.Action)
	}
	detail := ex.Rules[0].Conditions[0].Detail
	if strings.Contains(detail, "AKIA") || !strings.Contains(detail, "[REDACTED:aws_access_key]") {
		t.Errorf("detail = %q", detail)
	}
	req.Display = nil
	if detail := s.Explain(req).Rules[0].Conditions[0].Detail; !strings.Contains(detail, "AKIAIOSFODNN7EXAMPLE") {
		t.Errorf("without Display, detail = %q", detail)
	}
}
