package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/sdk"
)

// A leaked approver key is cut off from the command line: listed, revoked while serve runs, and
// refused by the running gateway at once.
func TestApproverKeyRevokedOnRunningServe(t *testing.T) {
	dir, agentKey, approverKey := initData(t)
	d := startServe(t, dir)
	ctx := context.Background()
	agent := sdk.New(d.url, sdk.WithAPIKey(agentKey), sdk.WithAgentID(app.DemoAgent))
	hold := func(filter string) string {
		t.Helper()
		held, err := agent.Decide(ctx, sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": 3, "filter": filter}})
		if err != nil || !held.Pending() {
			t.Fatalf("risky call: %+v, %v", held, err)
		}
		return held.ApprovalID
	}
	approverEnv := []string{"PORTCULLIS_URL=" + d.url, "PORTCULLIS_APPROVER_KEY=" + approverKey}
	if code, out, stderr := cli(t, approverEnv, "approvals", "approve", hold("x' UNION SELECT 1 --")); code != 0 || !strings.Contains(out, "approved") {
		t.Fatalf("approve before revocation: %d %q %s", code, out, stderr)
	}

	keyID, err := identity.APIKeyID(approverKey)
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := cli(t, nil, "approvals", "keys", "list", "--data", dir)
	if code != 0 || !strings.Contains(out, keyID) || !strings.Contains(out, "alice") || !strings.Contains(out, "active") {
		t.Fatalf("approvals keys list: %d %q %s", code, out, stderr)
	}
	code, out, stderr = cli(t, nil, "approvals", "keys", "revoke", "--data", dir, keyID)
	if code != 0 || out != "revoked "+keyID+"\n" {
		t.Fatalf("approvals keys revoke: %d %q %s", code, out, stderr)
	}
	if code, out, _ := cli(t, nil, "approvals", "keys", "list", "--data", dir, "--approver", "alice"); code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("list after revoke: %d %q", code, out)
	}
	// The agents' key store is another store: an approver key's ID is unknown there.
	if code, _, _ := cli(t, nil, "keys", "revoke", "--data", dir, keyID); code == 0 {
		t.Errorf("keys revoke found an approver key in the agents' store")
	}

	code, _, stderr = cli(t, approverEnv, "approvals", "approve", hold("x' UNION SELECT 2 --"))
	if code == 0 || !strings.Contains(stderr, "401 not_an_approver") {
		t.Fatalf("approve with a revoked key: %d %s", code, stderr)
	}
}

// A key for an approver or an agent the configuration does not declare is created with a warning
// that shows the configuration to add; the approvals API then says what is missing, not to use an
// approver key.
func TestApproverKeyForUndeclaredApprover(t *testing.T) {
	dir, agentKey, _ := initData(t)
	d := startServe(t, dir)

	code, out, stderr := cli(t, nil, "approvals", "keys", "create", "--approver", "bob@example.com", "--data", dir)
	if code != 0 {
		t.Fatalf("approvals keys create: %d %s", code, stderr)
	}
	bobKey := strings.TrimSpace(out)
	snippet := "approvals:\n  approvers:\n    - id: bob@example.com\n      scopes:\n        - agents: [\".*\"]\n          tools: [\".*\"]\n"
	if !strings.Contains(stderr, "warning: bob@example.com is not declared under approvals.approvers") || !strings.Contains(stderr, snippet) {
		t.Errorf("approvals keys create for an undeclared approver, stderr:\n%s", stderr)
	}
	if code, _, stderr := cli(t, nil, "approvals", "keys", "create", "--approver", "alice", "--data", dir); code != 0 || strings.Contains(stderr, "warning") {
		t.Errorf("approvals keys create for a declared approver: %d %s", code, stderr)
	}

	code, _, stderr = cli(t, nil, "keys", "create", "--agent", "ghost-agent", "--data", dir)
	if code != 0 || !strings.Contains(stderr, "warning: ghost-agent is not declared under identity.agents") || !strings.Contains(stderr, "identity:\n  agents:\n    - id: ghost-agent\n") {
		t.Errorf("keys create for an undeclared agent: %d\n%s", code, stderr)
	}
	if code, _, stderr := cli(t, nil, "keys", "create", "--agent", app.DemoAgent, "--data", dir); code != 0 || strings.Contains(stderr, "warning") {
		t.Errorf("keys create for the demo agent: %d %s", code, stderr)
	}

	held, err := sdk.New(d.url, sdk.WithAPIKey(agentKey)).Decide(context.Background(),
		sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": 3, "filter": "x' UNION SELECT 3 --"}})
	if err != nil || !held.Pending() {
		t.Fatalf("risky call: %+v, %v", held, err)
	}
	code, _, stderr = cli(t, []string{"PORTCULLIS_URL=" + d.url, "PORTCULLIS_APPROVER_KEY=" + bobKey}, "approvals", "approve", held.ApprovalID)
	if code == 0 || !strings.Contains(stderr, "401 not_an_approver") || !strings.Contains(stderr, "not a declared approver (add it under approvals.approvers)") ||
		strings.Contains(stderr, "approvals keys create") {
		t.Errorf("approve with an undeclared approver's key: %d\n%s", code, stderr)
	}
	// An unknown key learns nothing about who is declared.
	code, _, stderr = cli(t, []string{"PORTCULLIS_URL=" + d.url, "PORTCULLIS_APPROVER_KEY=pcl_AAAAAAAAAAAAAAAAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"}, "approvals", "approve", held.ApprovalID)
	if code == 0 || strings.Contains(stderr, "declared") {
		t.Errorf("approve with an unknown key: %d\n%s", code, stderr)
	}
}
