package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// appendSession writes one record of a session: a decision with the labels it was decided under
// or a tool result with the labels it brought; it returns the record's seq.
func (r *rig) appendSession(kind ledger.Kind, agent, user, session, tool, decision, reason string, labels ...string) uint64 {
	r.t.Helper()
	rec := &ledger.Record{Kind: kind, Time: time.Now(), DecisionID: fmt.Sprintf("dec_%s_%s_%d", agent, tool, time.Now().UnixNano()),
		Agent: &ledger.Principal{ID: agent, Verified: true}, Tool: tool, Decision: decision, Reason: reason,
		Session: &ledger.Session{ID: session, Labels: labels}}
	if user != "" {
		rec.User = &ledger.Principal{ID: user, Verified: true}
	}
	seq, err := r.led.Append(context.Background(), rec)
	if err != nil {
		r.t.Fatal(err)
	}
	return seq
}

// flowRow is the flow table's row for record seq.
func flowRow(t *testing.T, body string, seq uint64) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<tr class="step[^"]*"><td><a href="/console/audit/` + fmt.Sprint(seq) + `">.*?</tr>`).FindString(body)
	if m == "" {
		t.Fatalf("the flow has no row for record %d:\n%s", seq, body)
	}
	return m
}

// The exfiltration scenario as the ledger holds it: a fetched page brings untrusted content, a
// file read brings private data, and the mail sent after is held. The session's page shows each
// decision with what the session had seen, and links every label to the result that brought it.
func TestSessionFlowShowsWhyASinkWasHeld(t *testing.T) {
	r := newRig(t, false)
	const sid = "conv/7 ü?" // chosen by a client: escaped in every link
	other := r.appendSession(ledger.KindDecision, "agent-a", "", "s-other", "fetch_url", "allow", "")
	fetch := r.appendSession(ledger.KindDecision, "agent-a", "", sid, "fetch_url", "allow", "")
	fetched := r.appendSession(ledger.KindToolResult, "agent-a", "", sid, "fetch_url", "", "", "untrusted")
	read := r.appendSession(ledger.KindDecision, "agent-a", "", sid, "read_file", "allow", "", "untrusted")
	readRes := r.appendSession(ledger.KindToolResult, "agent-a", "", sid, "read_file", "", "", "private", "classification:confidential")
	// Another agent's session of the same ID: its own labels, never sourced from agent-a's results.
	stray := r.appendSession(ledger.KindDecision, "agent-b", "", sid, "send_email", "allow", "", "private")
	send := r.appendSession(ledger.KindDecision, "agent-a", "", sid, "send_email", "constrain",
		"session has seen untrusted (from fetch_url dec_1), private (from read_file dec_2)", "untrusted", "private", "classification:confidential")

	c := r.signIn(keyAuditor)
	page := "/console/sessions/" + url.PathEscape(sid)
	code, body, _ := r.get(c, page)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", page, code, body)
	}
	if strings.Contains(body, fmt.Sprintf(`href="/console/audit/%d"`, other)) {
		t.Error("the flow lists a record of another session")
	}
	// Oldest first.
	var last int
	for _, seq := range []uint64{fetch, fetched, read, readRes, stray, send} {
		i := strings.Index(body, fmt.Sprintf(`<td><a href="/console/audit/%d">`, seq))
		if i < last {
			t.Errorf("record %d is not in ledger order (at %d, after %d)", seq, i, last)
		}
		last = i
	}
	src := func(seq uint64, tool string) string {
		return fmt.Sprintf(`(from <a href="/console/audit/%d" class="source">%s #%d</a>)`, seq, tool, seq)
	}
	for _, c := range []struct {
		seq  uint64
		want []string
	}{
		{fetch, []string{"nothing seen yet", `<span class="decision allow">allow</span>`}},
		{fetched, []string{`brought <span class="label">untrusted</span></td>`}},
		{read, []string{`had seen <span class="label">untrusted</span> ` + src(fetched, "fetch_url")}},
		{readRes, []string{`brought <span class="label">private</span>, <span class="label">classification:confidential</span></td>`}},
		{stray, []string{`<span class="label">private</span> (from an older result)`}},
		{send, []string{`<span class="decision constrain">constrain</span>`,
			`<span class="label">untrusted</span> ` + src(fetched, "fetch_url"),
			`<span class="label">private</span> ` + src(readRes, "read_file"),
			`<span class="label">classification:confidential</span> ` + src(readRes, "read_file"),
			"session has seen untrusted (from fetch_url dec_1)"}},
	} {
		row := flowRow(t, body, c.seq)
		for _, w := range c.want {
			if !strings.Contains(row, w) {
				t.Errorf("record %d's row lacks %q:\n%s", c.seq, w, row)
			}
		}
	}
	if !strings.Contains(body, "This ID names 2 sessions") {
		t.Error("the page does not say the ID names a session per agent")
	}

	// Reached from a record of the session and from the audit explorer's session filter.
	esc := url.PathEscape(sid)
	if _, body, _ := r.get(c, fmt.Sprintf("/console/audit/%d", send)); !strings.Contains(body, `href="/console/sessions/`+esc+`"`) ||
		!strings.Contains(body, "had seen untrusted, private, classification:confidential") {
		t.Errorf("the record page does not link its session:\n%s", body)
	}
	_, body, _ = r.get(c, "/console/audit?"+url.Values{"session": {sid}}.Encode())
	if n := strings.Count(body, `<tr class="rec">`); n != 6 || !strings.Contains(body, `id="session-flow"`) || !strings.Contains(body, `href="/console/sessions/`+esc+`"`) {
		t.Errorf("the audit explorer's session filter: %d rows\n%s", n, body)
	}
	if _, body, _ = r.get(c, "/console/audit?session=s-other"); strings.Count(body, `<tr class="rec">`) != 1 {
		t.Errorf("session=s-other:\n%s", body)
	}

	for _, p := range []string{"/console/sessions/nobody", "/console/sessions/" + strings.Repeat("x", maxSessionID+1)} {
		if code, _, _ := r.get(c, p); code != http.StatusNotFound {
			t.Errorf("GET %.60s: %d, want 404", p, code)
		}
	}
}

// A session's flow is read like the agents pages: by auditors and admins. An approver sees the
// session on a record, without the link to a page it cannot open.
func TestSessionFlowIsForAuditorsAndAdmins(t *testing.T) {
	r := newRig(t, false)
	seq := r.appendSession(ledger.KindDecision, "agent-a", "", "s1", "send_email", "constrain", "", "untrusted")
	if code, _, _ := r.get(r.signIn(keyAlice), "/console/sessions/s1"); code != http.StatusForbidden {
		t.Errorf("approver: %d, want 403", code)
	}
	if code, _, _ := r.get(r.signIn(keyAdmin), "/console/sessions/s1"); code != http.StatusOK {
		t.Errorf("admin: %d, want 200", code)
	}
	_, body, _ := r.get(r.signIn(keyAlice), fmt.Sprintf("/console/audit/%d", seq))
	if !strings.Contains(body, `<dd id="session"><code>s1</code>`) || strings.Contains(body, "/console/sessions/") {
		t.Errorf("the approver's record page:\n%s", body)
	}
	// A held call's request names its session; the admin's page links its flow.
	req, err := r.engine.Request(context.Background(), approval.Input{DecisionID: "dec_s1", Agent: "agent-a", Tool: "send_email",
		Params: json.RawMessage(`{}`), RedactedParams: json.RawMessage(`{}`), Rule: "session_untrusted_and_private_to_sink",
		PolicyVersion: "v1", Required: 1, Labels: map[string]string{"session": "s1/x"}})
	if err != nil {
		t.Fatal(err)
	}
	page := "/console/approvals/" + req.ID
	if _, body, _ := r.get(r.signIn(keyAdmin), page); !strings.Contains(body, `<dd id="session"><code>s1/x</code> · <a href="/console/sessions/s1%2Fx">`) {
		t.Errorf("the admin's request page:\n%s", body)
	}
	if _, body, _ := r.get(r.signIn(keyAlice), page); !strings.Contains(body, `<dd id="session"><code>s1/x</code></dd>`) {
		t.Errorf("the approver's request page:\n%s", body)
	}
}

// Only the newest flowMax records are read; the page says so and links the older ones.
func TestSessionFlowIsBounded(t *testing.T) {
	r := newRig(t, false)
	first := r.appendSession(ledger.KindToolResult, "agent-a", "", "long", "fetch_url", "", "", "untrusted")
	// A held decision's reason names the result that brought each label: it is linked even
	// when that result's record was not read.
	for range flowMax - 2 {
		r.appendSession(ledger.KindDecision, "agent-a", "", "long", "send_email", "constrain",
			"session has seen untrusted (from fetch_url dec_0f1e)", "untrusted")
	}
	r.appendSession(ledger.KindDecision, "agent-a", "", "long", "fetch_url", "allow", "", "untrusted")
	// As the guard records it: the explanation in the session condition's detail.
	if _, err := r.led.Append(context.Background(), &ledger.Record{Kind: ledger.KindDecision, Time: time.Now(), DecisionID: "dec_held",
		Agent: &ledger.Principal{ID: "agent-a", Verified: true}, Tool: "http_post", Decision: "constrain",
		Policy: &ledger.Policy{Rule: "session_untrusted_and_private_to_sink", Conditions: []ledger.Condition{
			{Expr: "tool_sink: external", Result: true, Detail: "tool http_post sink external, needs external"},
			{Expr: "session", Result: true, Detail: `session "long" has seen untrusted (from web__fetch dec_9a9a); needs all of [untrusted]`}}},
		Session: &ledger.Session{ID: "long", Labels: []string{"untrusted"}}}); err != nil {
		t.Fatal(err)
	}
	_, body, _ := r.get(r.signIn(keyAuditor), "/console/sessions/long")
	if n := strings.Count(body, `<tr class="step`); n != flowMax {
		t.Errorf("%d rows, want %d", n, flowMax)
	}
	for _, want := range []string{`id="session-cut"`, fmt.Sprintf(`href="/console/audit?before=%d&amp;session=long"`, first+1),
		"(from an older result)", `(from <a href="/console/audit?decision_id=dec_0f1e" class="source">fetch_url dec_0f1e</a>)`,
		`(from <a href="/console/audit?decision_id=dec_9a9a" class="source">web__fetch dec_9a9a</a>)</td>`,
		"<td>session_untrusted_and_private_to_sink</td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}

func TestSourceInReason(t *testing.T) {
	const reason = "session \"s\" has seen untrusted (from llm.content.tool dec_a1), my_private (from crm dec_b2), " +
		"private (from read_file dec_c3), odd (from nodecision); needs all of [untrusted private]"
	for _, c := range []struct{ label, tool, id string }{
		{"untrusted", "llm.content.tool", "dec_a1"},
		{"private", "read_file", "dec_c3"}, // not my_private's source
		{"my_private", "crm", "dec_b2"},
		{"odd", "", ""},
		{"restricted", "", ""},
	} {
		if tool, id := sourceInReason(reason, c.label); tool != c.tool || id != c.id {
			t.Errorf("%s: %q %q, want %q %q", c.label, tool, id, c.tool, c.id)
		}
	}
}
