package console

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// appendDecision writes one decision record at the time given; its agent is verified unless it
// is "stray" (or starts with it): a refused caller's claim.
func (r *rig) appendDecision(agent, tool, decision string, at time.Time, anomalies ...ledger.Anomaly) {
	r.t.Helper()
	if _, err := r.led.Append(context.Background(), &ledger.Record{Kind: ledger.KindDecision, Time: at,
		DecisionID: fmt.Sprintf("dec_%s_%d", agent, at.UnixNano()), Agent: &ledger.Principal{ID: agent, Verified: !strings.HasPrefix(agent, "stray")}, Tool: tool,
		Decision: decision, Policy: &ledger.Policy{Rule: "r-" + decision}, Anomalies: anomalies}); err != nil {
		r.t.Fatal(err)
	}
}

func TestAgentsPageListsDeclaredAndSeenAgents(t *testing.T) {
	r := newRig(t, false)
	now := time.Now()
	// Older than the window: not counted.
	r.appendDecision("agent-a", "fetch", "deny", now.Add(-30*time.Hour))
	// agent-a: 23 calls spread over the earlier hours (one an hour), then 12 in the last hour.
	for h := 23; h >= 1; h-- {
		r.appendDecision("agent-a", "fetch", "allow", now.Add(-time.Duration(h)*time.Hour-time.Minute))
	}
	for i := range 12 {
		d := "allow"
		if i%4 == 0 {
			d = "deny"
		}
		r.appendDecision("agent-a", "delete_file", d, now.Add(-30*time.Minute+time.Duration(i)*time.Second))
	}
	// An agent nobody declared, seen by the ledger; one anomaly.
	r.appendDecision("stray", "wire", "constrain", now.Add(-10*time.Minute), ledger.Anomaly{Signal: "new_tool", Score: 0.9})
	code, body, _ := r.get(r.signIn(keyAuditor), "/console/agents")
	if code != http.StatusOK {
		t.Fatalf("auditor's agents page: %d\n%s", code, body)
	}
	for _, want := range []string{
		`data-id="agent-a"`, `data-id="agent-idle"`, `data-id="stray"`, "(not declared; only claimed by refused callers)",
		// agent-a: 32 allowed, 3 denied; last hour 12 against 1.0 an hour before: above usual.
		"<td>32</td><td>0</td><td>0</td><td>3</td>", `12 / 1.0 · above usual`,
		"<code>fetch</code> (23), <code>delete_file</code> (12)",
		`href="/console/audit?agent=agent-a"`, `href="/console/agents/agent-a"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("agents page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}

	// An agent's page: credentials' metadata, the rate against its baseline, its denials and
	// anomalies, each linked to its record.
	c := r.signIn(keyAuditor)
	code, body, _ = r.get(c, "/console/agents/agent-a")
	for _, want := range []string{"<code>pcl_k1</code>", "laptop", "signing key", "12 decisions, against an average of 1.0 per hour before it (above)",
		`id="denials"`, `<span class="decision deny">deny</span>`, `class="baseline"`} {
		if !strings.Contains(body, want) {
			t.Errorf("agent-a's page (%d) lacks %q", code, want)
		}
	}
	if n := strings.Count(body[strings.Index(body, `id="denials"`):], `<tr class="rec">`); n != 3 {
		t.Errorf("agent-a's denials: %d rows, want 3", n)
	}
	_, body, _ = r.get(c, "/console/agents/stray")
	if !strings.Contains(body, "Not declared") || !strings.Contains(body, "new_tool 0.90") {
		t.Errorf("stray's page:\n%s", body)
	}
	if code, _, _ := r.get(c, "/console/agents/agent-idle"); code != http.StatusOK {
		t.Errorf("a declared agent without calls: %d", code)
	}
	if code, _, _ := r.get(c, "/console/agents/nobody"); code != http.StatusNotFound {
		t.Errorf("an agent neither declared nor seen: %d", code)
	}
}

// Approvers see agents only through their queue: the agents pages are for auditors and admins.
func TestAgentsPageIsForAuditorsAndAdmins(t *testing.T) {
	r := newRig(t, false)
	c := r.signIn(keyAlice)
	for _, p := range []string{"/console/agents", "/console/agents/agent-a"} {
		if code, _, _ := r.get(c, p); code != http.StatusForbidden {
			t.Errorf("approver GET %s: %d", p, code)
		}
	}
	if _, body, _ := r.get(c, "/console/approvals"); strings.Contains(body, "/console/agents") {
		t.Error("the approver's menu links the agents page")
	}
	if _, body, _ := r.get(r.signIn(keyAuditor), "/console/approvals"); !strings.Contains(body, `href="/console/agents"`) {
		t.Error("the auditor's menu lacks the agents page")
	}
}

// Refused callers can claim any agent ID: the page lists the declared agents first, then the
// busiest, and says how many it left out.
func TestAgentsPageBoundsClaimedAgents(t *testing.T) {
	r := newRig(t, false)
	now := time.Now()
	for i := range maxAgentRows + 2 {
		r.appendDecision(fmt.Sprintf("stray-%04d", i), "x", "deny", now.Add(-time.Minute))
	}
	_, body, _ := r.get(r.signIn(keyAuditor), "/console/agents")
	if n := strings.Count(body, `<tr class="agent"`); n != maxAgentRows || !strings.Contains(body, `id="hidden-agents">4 more agents`) ||
		!strings.Contains(body, `data-id="agent-a"`) || !strings.Contains(body, `data-id="agent-idle"`) {
		t.Fatalf("%d rows listed:\n%s", n, body[strings.Index(body, "</table>"):])
	}
}
