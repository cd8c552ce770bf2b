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

func TestConsoleOIDC(t *testing.T) {
	const ok = "console:\n  oidc:\n    issuer: https://idp.example.com\n    client_id: portcullis-console\n    client_secret_env: CONSOLE_SECRET\n" +
		"    redirect_url: https://gw.example.com/console/oidc/callback\n    role_claim: groups\n    roles:\n      admin: [secops]\n      auditor: [audit]\n" +
		"approvals:\n  approvers:\n    - id: alice@example.com\n      issuer: https://idp.example.com\n      scopes:\n        - agents: [\".*\"]\n          tools: [\".*\"]\n"
	c, err := Parse("gw.yaml", []byte(ok))
	if err != nil || !c.Console.OIDC.On() || c.Console.OIDC.Roles["admin"][0] != "secops" {
		t.Fatalf("console.oidc: %+v, %v", c.Console.OIDC, err)
	}
	agentsAud := "identity:\n  jwt_issuers:\n    - issuer: https://idp.example.com\n      jwks_url: https://idp.example.com/jwks\n      audiences: [portcullis-console]\n"
	for _, tc := range []struct{ yaml, want string }{
		{strings.Replace(ok, "https://idp.example.com\n    client_id", "http://idp.example.com\n    client_id", 1), "console.oidc.issuer"},
		{strings.Replace(ok, "    client_id: portcullis-console\n", "", 1), "console.oidc.client_id"},
		{strings.Replace(ok, "/console/oidc/callback", "/elsewhere", 1), "console.oidc.redirect_url"},
		{strings.Replace(ok, "      auditor: [audit]\n", "      root: [audit]\n", 1), "console.oidc.roles.root"},
		{strings.Replace(ok, "    role_claim: groups\n", "", 1), "console.oidc.role_claim"},
		{strings.Replace(ok, "    role_claim: groups\n", "    subject_claim: name\n    role_claim: groups\n", 1), "console.oidc.subject_claim"},
		{strings.Replace(ok, "    client_id:", "    name: \"SSO\\u0007\"\n    client_id:", 1), "console.oidc.name"},
		// The console's client ID is an audience agents' tokens carry: refused.
		{ok + agentsAud, "console.oidc.client_id"},
	} {
		if _, err := Parse("gw.yaml", []byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error at %s", tc.yaml, err, tc.want)
		}
	}
}
