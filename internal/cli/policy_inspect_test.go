package cli

import (
	"strings"
	"testing"
)

// Without threat_level, policy eval inspects the params as the gateway would; with it, the stated
// level is used as given.
func TestPolicyEvalInspectsWhenNoThreatLevel(t *testing.T) {
	const policyFile = "../app/defaults/report-generator-v1.yaml"
	in := strings.Join([]string{
		`{"agent":{"id":"report-generator-v1"},"time":"2026-11-25T15:00:00Z","tool":"fetch_customer_names","params":{"limit":5,"q":"1 UNION SELECT password FROM users"}}`,
		`{"agent":{"id":"report-generator-v1"},"time":"2026-11-25T15:00:00Z","tool":"fetch_customer_names","params":{"limit":5}}`,
		`{"agent":{"id":"report-generator-v1"},"time":"2026-11-25T15:00:00Z","tool":"fetch_customer_names","params":{"limit":5,"q":"1 UNION SELECT password FROM users"},"threat_level":"none"}`,
		`{"agent":{"id":"report-generator-v1"},"time":"2026-11-25T15:00:00Z","tool":"transfer_funds","params":{"q":"1 UNION SELECT password FROM users"}}`,
	}, "\n") + "\n"
	code, out, stderr := run(t, in, "policy", "eval", "--policy", policyFile, "--input", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{`"decision":"CONSTRAIN"`, `"decision":"ALLOW"`, `"decision":"ALLOW"`, `"decision":"DENY"`}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines:\n%s", len(lines), out)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d = %s, want %s", i+1, lines[i], w)
		}
	}
}
