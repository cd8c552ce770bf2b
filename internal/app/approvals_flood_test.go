package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// holdEverything is a policy that holds every call of other-agent for approval.
const holdEverything = `agent_id: other-agent
default_action: DENY
rules:
  - name: hold_everything
    tool: ".*"
    action: CONSTRAIN
    conditions: []
`

// floodGateway is a gateway where other-agent's calls all wait for approval, with an approver
// scoped to the demo agent only. It returns the gateway, other-agent's key and the approver's key.
func floodGateway(t *testing.T, edit func(*config.Config)) (g *gateway, otherKey, approverKey string) {
	t.Helper()
	return otherAgentGateway(t, holdEverything, []string{DemoAgent}, edit)
}

// otherAgentGateway is a gateway with a second agent, other-agent, governed by policy, and an
// approver, alice@example.com, scoped to approverAgents; edit changes the configuration further.
// It returns the gateway, other-agent's key and the approver's key.
func otherAgentGateway(t *testing.T, policy string, approverAgents []string, edit func(*config.Config)) (g *gateway, otherKey, approverKey string) {
	t.Helper()
	g = newGatewayWith(t, func(cfg *config.Config) {
		ctx := context.Background()
		if err := os.WriteFile(filepath.Join(cfg.Policies[0], "other-agent.yaml"), []byte(policy), 0o600); err != nil {
			t.Fatal(err)
		}
		ks, err := identity.OpenFileKeyStore(filepath.Join(cfg.DataDir, identity.KeyFileName))
		if err != nil {
			t.Fatal(err)
		}
		if otherKey, _, err = identity.CreateAPIKey(ctx, ks, "other-agent", "test", time.Now(), 0); err != nil {
			t.Fatal(err)
		}
		aks, err := identity.OpenFileKeyStore(filepath.Join(cfg.DataDir, ApproverKeysFile))
		if err != nil {
			t.Fatal(err)
		}
		if approverKey, _, err = identity.CreateAPIKey(ctx, aks, "alice@example.com", "test", time.Now(), 0); err != nil {
			t.Fatal(err)
		}
		cfg.Approvals.Approvers = []config.ApproverConfig{{ID: "alice@example.com",
			Scopes: []approval.Scope{{Agents: approverAgents, Tools: []string{".*"}}}}}
		if edit != nil {
			edit(cfg)
		}
	})
	return g, otherKey, approverKey
}

func (g *gateway) listApprovals(key, query string) []approval.Request {
	g.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/v1/approvals?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		g.t.Fatalf("list approvals: %d %s", resp.StatusCode, raw)
	}
	var out struct {
		Approvals []approval.Request `json:"approvals"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		g.t.Fatal(err)
	}
	return out.Approvals
}

// An agent floods the queue with requests an approver is not scoped for; the approver's own
// request, opened after the flood, must still be listed: the scope filter applies before the limit.
func TestApprovalFloodDoesNotHideScopedRequests(t *testing.T) {
	g, otherKey, approverKey := floodGateway(t, nil)
	for i := range 12 {
		_, a := g.post("/v1/decide", otherKey, fmt.Appendf(nil, `{"tool":"send_email","params":{"n":%d}}`, i))
		if a.Decision != "CONSTRAIN" {
			t.Fatalf("flood request %d: %+v", i, a)
		}
	}
	// The demo agent's injection on an allowed tool is held (threat escalation to CONSTRAIN).
	_, mine := g.post("/v1/decide", g.key, []byte(`{"tool":"fetch_customer_names","params":{"limit":5,"filter":"' OR 1=1 UNION SELECT password FROM users --"}}`))
	if mine.Decision != "CONSTRAIN" || mine.ApprovalID == "" {
		t.Fatalf("setup: %+v", mine)
	}
	for _, q := range []string{"state=pending&limit=5", "state=pending&limit=1", "state=pending"} {
		got := g.listApprovals(approverKey, q)
		if len(got) != 1 || got[0].ID != mine.ApprovalID {
			ids := []string{}
			for _, r := range got {
				ids = append(ids, r.ID+"/"+r.Agent)
			}
			t.Errorf("GET /v1/approvals?%s = %v, want exactly the in-scope request %s", q, ids, mine.ApprovalID)
		}
	}
}

// An agent may hold at most approvals.max_pending_per_agent requests pending; the next call is
// denied with a stable code, and the denial is on the record.
func TestPendingApprovalsCappedPerAgent(t *testing.T) {
	g, otherKey, _ := floodGateway(t, func(cfg *config.Config) { cfg.Approvals.MaxPendingPerAgent = 3 })
	for i := range 3 {
		_, a := g.post("/v1/decide", otherKey, fmt.Appendf(nil, `{"tool":"send_email","params":{"n":%d}}`, i))
		if a.Decision != "CONSTRAIN" {
			t.Fatalf("request %d: %+v", i, a)
		}
	}
	status, a := g.post("/v1/decide", otherKey, []byte(`{"tool":"send_email","params":{"n":99}}`))
	if status != http.StatusTooManyRequests || a.Decision != "DENY" || a.Error == nil || a.Error.Code != "too_many_pending_approvals" {
		t.Fatalf("request over the cap: %d %+v %+v", status, a, a.Error)
	}
	// Another agent's requests are not counted against this one.
	if _, mine := g.post("/v1/decide", g.key, []byte(`{"tool":"fetch_customer_names","params":{"limit":5,"filter":"' OR 1=1 UNION SELECT password FROM users --"}}`)); mine.Decision != "CONSTRAIN" {
		t.Errorf("demo agent held back by another agent's cap: %+v", mine)
	}
	var found bool
	g.scanLedger(func(r ledger.Record) {
		if r.DecisionID == a.DecisionID {
			found = r.Decision == "deny" && r.Kind == ledger.KindDecision && len(r.Reason) > 0 &&
				r.Reason[:len("too_many_pending_approvals")] == "too_many_pending_approvals"
		}
	})
	if !found {
		t.Errorf("denial over the cap not recorded as deny/too_many_pending_approvals")
	}
}

// scanLedger calls fn with every record the gateway has written so far.
func (g *gateway) scanLedger(fn func(ledger.Record)) {
	g.t.Helper()
	if err := g.app.ledgerStore.Scan(context.Background(), 0, func(e ledger.Entry) error {
		r, err := ledger.ParseRecord(e.Data)
		if err != nil {
			return err
		}
		fn(*r)
		return nil
	}); err != nil {
		g.t.Fatal(err)
	}
}
