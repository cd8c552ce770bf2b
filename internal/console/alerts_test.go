package console

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/alert"
)

// appendAlert records what the alert engine raised, as the app does.
func (r *rig) appendAlert(a alert.Alert) uint64 {
	r.t.Helper()
	seq, err := r.led.Append(context.Background(), a.Record())
	if err != nil {
		r.t.Fatal(err)
	}
	return seq
}

func TestAlertsPageListsAlertsForAuditorsAndAdmins(t *testing.T) {
	r := newRig(t, false)
	now := time.Now()
	r.appendDecision("agent-a", "delete_file", "deny", now.Add(-time.Minute))
	r.appendAlert(alert.Alert{Rule: alert.RuleDenialSpike, Severity: alert.SeverityCritical, Agent: "agent-a",
		Message: "agent agent-a: 40 denials in 5m0s against a baseline of 1.0", Count: 1, First: now, Last: now})
	seq := r.appendAlert(alert.Alert{Rule: alert.RuleFlood, Severity: alert.SeverityWarning, Count: 97,
		Message: "97 more alerts were held back <b>", First: now, Last: now})
	for _, key := range []string{keyAuditor, keyAdmin} {
		c := r.signIn(key)
		code, body, _ := r.get(c, "/console/alerts")
		if code != http.StatusOK {
			t.Fatalf("%s: alerts page %d\n%s", key, code, body)
		}
		flood := strings.Index(body, `data-rule="alert_flood"`)
		spike := strings.Index(body, `data-rule="denial_spike"`)
		if flood < 0 || spike < 0 || flood > spike {
			t.Errorf("%s: alerts not listed newest first (flood at %d, spike at %d)", key, flood, spike)
		}
		for _, want := range []string{"40 denials in 5m0s", `href="/console/agents/agent-a"`, "<td>97</td>",
			"held back &lt;b&gt;", `href="/console/audit/` + strconv.FormatUint(seq, 10) + `"`} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: alerts page lacks %q", key, want)
			}
		}
		if _, body, _ := r.get(c, "/console/audit/"+strconv.FormatUint(seq, 10)); !strings.Contains(body, `<code>alert_flood</code> (warning) ×97: 97 more alerts were held back &lt;b&gt;`) {
			t.Errorf("%s: the alert's record page does not name the alert", key)
		}
		if _, body, _ := r.get(c, "/console/overview"); !strings.Contains(body, `<a href="/console/alerts" id="alert-count">2</a>`) {
			t.Errorf("%s: overview lacks the alert count", key)
		}
	}
	// An approver sees only its scopes; alerts are about every agent.
	c := r.signIn(keyAlice)
	if code, _, _ := r.get(c, "/console/alerts"); code != http.StatusForbidden {
		t.Errorf("approver GET /console/alerts: %d", code)
	}
	if _, body, _ := r.get(c, "/console/overview"); strings.Contains(body, "alert-count") {
		t.Error("the approver's overview counts alerts")
	}
}

func TestAlertsPageEmpty(t *testing.T) {
	r := newRig(t, false)
	r.appendDecision("agent-a", "fetch", "allow", time.Now())
	code, body, _ := r.get(r.signIn(keyAuditor), "/console/alerts")
	if code != http.StatusOK || !strings.Contains(body, "No alerts.") {
		t.Fatalf("%d %s", code, body)
	}
}
