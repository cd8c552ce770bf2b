package config

import (
	"strings"
	"testing"
)

func TestConsoleDefaultsAndRoles(t *testing.T) {
	c, err := Parse("empty.yaml", nil)
	if err != nil || !c.ConsoleOn() || c.Console.Path != "/console" {
		t.Fatalf("defaults: %+v, %v", c.Console, err)
	}
	c, err = Parse("gw.yaml", []byte("console:\n  enabled: false\n  path: /ops/console\n"))
	if err != nil || c.ConsoleOn() || c.Console.Path != "/ops/console" {
		t.Fatalf("off: %+v, %v", c.Console, err)
	}
	c, err = Parse("gw.yaml", []byte("approvals:\n  approvers:\n    - id: audrey\n      role: auditor\n    - id: ada\n      role: admin\n      scopes:\n        - agents: [\".*\"]\n          tools: [\".*\"]\n"))
	if err != nil || c.Approvals.Approvers[0].RoleOf() != RoleAuditor || c.Approvals.Approvers[1].RoleOf() != RoleAdmin {
		t.Fatalf("roles: %v", err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"console:\n  path: /\n", "console.path"},
		{"console:\n  path: /v1/console\n", "console.path"},
		{"console:\n  path: /console/\n", "console.path"},
		{"console:\n  path: \"/con sole\"\n", "console.path"},
		{"console:\n  path: /mcp\n", "console.path"},
		{"console:\n  session_ttl: 1s\n", "console.session_ttl"},
		{"console:\n  idle_timeout: 9h\n", "console.idle_timeout"},
		{"approvals:\n  approvers:\n    - id: x\n      role: root\n      scopes:\n        - agents: [a]\n          tools: [b]\n", "approvals.approvers[0].role"},
		// An auditor approves nothing: scopes would promise otherwise.
		{"approvals:\n  approvers:\n    - id: x\n      role: auditor\n      scopes:\n        - agents: [a]\n          tools: [b]\n", "approvals.approvers[0].scopes"},
		{"approvals:\n  approvers:\n    - id: x\n      role: admin\n", "approvals.approvers[0].scopes"},
	} {
		if _, err := Parse("gw.yaml", []byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error at %s", tc.yaml, err, tc.want)
		}
	}
}
