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
