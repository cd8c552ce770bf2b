package approval

import "testing"

func TestApproverCovers(t *testing.T) {
	a := Approver{ID: "alice", Kind: Human, Scopes: []Scope{{Agents: []string{"report-.*"}, Tools: []string{"wire_money", "export_.*"}}}}
	tests := []struct {
		agent, tool string
		want        bool
	}{
		{"report-generator-v1", "wire_money", true},
		{"report-generator-v1", "export_customer_data", true},
		{"report-generator-v1", "delete_file", false},
		{"support-bot", "wire_money", false},
		{"xreport-generator", "wire_money", false}, // patterns match whole names
	}
	for _, tc := range tests {
		if got := a.Covers(tc.agent, tc.tool); got != tc.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tc.agent, tc.tool, got, tc.want)
		}
	}
	if (Approver{ID: "bob", Kind: Human, Scopes: []Scope{{Agents: []string{"("}, Tools: []string{".*"}}}}).Covers("a", "b") {
		t.Error("an invalid pattern covered a request")
	}
}

// TestDefinitionNeedsEveryAgent: a tool definition's request is decided only by a scope whose
// agents cover every agent, read from the pattern's structure; other requests as before.
func TestDefinitionNeedsEveryAgent(t *testing.T) {
	def := Request{ID: "apr_x", Agent: "agent-1", Tool: "fs__read", Rule: DefinitionRule}
	call := def
	call.Rule = "reads"
	tests := []struct {
		agents  []string
		tools   []string
		def, ok bool // may decide the definition; may decide the call
	}{
		{[]string{".*"}, []string{".*"}, true, true},
		{[]string{".+"}, []string{"fs__.*"}, true, true},
		{[]string{"(?s).*"}, []string{"fs__read"}, true, true},
		{[]string{"(.*)"}, []string{".*"}, true, true},
		{[]string{"agent-1|.*"}, []string{".*"}, true, true},
		{[]string{"[\\s\\S]*"}, []string{".*"}, true, true},
		{[]string{"agent-1", ".*"}, []string{".*"}, true, true},
		{[]string{".*"}, []string{"other"}, false, false},
		{[]string{"agent-1"}, []string{".*"}, false, true},
		{[]string{"agent-.*"}, []string{".*"}, false, true},
		{[]string{"agent-1|agent-2"}, []string{".*"}, false, true},
		{[]string{".?"}, []string{".*"}, false, false},
		{[]string{".*a.*"}, []string{".*"}, false, true},
		{[]string{"[^x]*"}, []string{".*"}, false, true},
	}
	for _, tc := range tests {
		a := Approver{ID: "alice", Kind: Human, Scopes: []Scope{{Agents: tc.agents, Tools: tc.tools}}}
		if got := a.MayDecide(def); got != tc.def {
			t.Errorf("agents %q tools %q: may decide the definition = %v, want %v", tc.agents, tc.tools, got, tc.def)
		}
		if got := a.MayDecide(call); got != tc.ok {
			t.Errorf("agents %q tools %q: may decide the call = %v, want %v", tc.agents, tc.tools, got, tc.ok)
		}
	}
}
