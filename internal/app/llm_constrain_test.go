package app

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

var approvalIDInNotice = regexp.MustCompile(`Approval ID: (apr_[a-z0-9]+)`)

// A CONSTRAIN call proposed by a model can complete: the model cannot carry an approval ID, so
// its identical re-proposal (same agent, tool and canonical arguments) joins the request while it
// is pending, redeems the grant once after approval, and opens a new request after that.
func TestLLMConstrainReproposalRedeemsTheGrantOnce(t *testing.T) {
	var n atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The model re-proposes the same call each turn, under a new call ID and with the
		// arguments' keys in another order and spacing: the canonical digest is the same.
		i := n.Add(1)
		args := `{\"to\":\"ops@example.com\",\"subject\":\"report\"}`
		if i%2 == 0 {
			args = `{ \"subject\": \"report\", \"to\": \"ops@example.com\" }`
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-%d","object":"chat.completion","created":1741570283,"model":"gpt-4.1",
"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
{"id":"call_%d","type":"function","function":{"name":"send_email","arguments":"%s"}}]},
"finish_reason":"tool_calls"}]}`, i, i, args)
	}))
	defer upstream.Close()
	g, otherKey, approverKey := llmGateway(t, upstream.URL)
	const body = `{"model":"gpt-4.1","messages":[{"role":"user","content":"mail the report"}]}`
	propose := func() (approvalID string, passed bool) {
		t.Helper()
		status, _, b := g.postLLM("/v1/chat/completions", otherKey, body)
		if status != http.StatusOK {
			t.Fatalf("model call: %d %s", status, b)
		}
		if m := approvalIDInNotice.FindStringSubmatch(b); m != nil {
			return m[1], false
		}
		if strings.Contains(b, `"name":"send_email"`) && strings.Contains(b, "ops@example.com") {
			return "", true
		}
		t.Fatalf("neither a notice nor the call: %s", b)
		return "", false
	}
	pending := func() []approval.Request {
		return g.listApprovals(approverKey, "state=pending")
	}

	first, passed := propose()
	if passed || first == "" {
		t.Fatal("the first proposal was not held for approval")
	}
	// While the request is pending, re-proposals join it: same ID, nothing piles up.
	for range 3 {
		if id, passed := propose(); passed || id != first {
			t.Fatalf("re-proposal while pending: approval %q (passed %v), want the pending %s", id, passed, first)
		}
	}
	if p := pending(); len(p) != 1 || p[0].ID != first {
		t.Fatalf("pending approvals after re-proposals: %d, want only %s", len(p), first)
	}
	if status, code, r := g.approve(t, first, approverKey); status != http.StatusOK || r.State != approval.Approved {
		t.Fatalf("approve: %d %s %s", status, code, r.State)
	}
	// Approved: the identical re-proposal reaches the app, once.
	if id, passed := propose(); !passed {
		t.Fatalf("the approved call was held again (approval %s)", id)
	}
	// The grant is single use: the next identical proposal asks again.
	second, passed := propose()
	if passed || second == "" || second == first {
		t.Fatalf("after the grant was used: approval %q (passed %v), want a new request", second, passed)
	}
	if p := pending(); len(p) != 1 || p[0].ID != second {
		t.Fatalf("pending approvals: %d, want only %s", len(p), second)
	}
	redeemed := 0
	g.scanLedger(func(r ledger.Record) {
		if r.Kind == ledger.KindDecision && r.Source == "llm" && r.Tool == "send_email" && r.Decision == "allow" {
			redeemed++
			if r.Approval == nil || r.Approval.ID != first {
				t.Errorf("allowed call recorded without its grant: %+v", r.Approval)
			}
		}
	})
	if redeemed != 1 {
		t.Errorf("%d allowed send_email decisions in the ledger, want 1", redeemed)
	}
}

// A denied request is final: the re-proposal after a denial opens a new request (approvers see it
// again) rather than joining or reviving the denied one.
func TestLLMConstrainReproposalAfterDenialOpensANewRequest(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[
{"type":"tool_use","id":"toolu_1","name":"send_email","input":{"to":"ops@example.com"}}],
"stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":10}}`)
	}))
	defer upstream.Close()
	g, otherKey, approverKey := llmGateway(t, upstream.URL)
	const body = `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"mail ops"}]}`
	idOf := func() string {
		t.Helper()
		status, _, b := g.postLLM("/v1/messages", otherKey, body)
		m := approvalIDInNotice.FindStringSubmatch(b)
		if status != http.StatusOK || m == nil {
			t.Fatalf("model call: %d %s, want a notice with an approval ID", status, b)
		}
		return m[1]
	}
	first := idOf()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/v1/approvals/"+first+"/deny", nil)
	req.Header.Set("Authorization", "Bearer "+approverKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("deny: %d", resp.StatusCode)
	}
	if again := idOf(); again == first {
		t.Fatalf("the re-proposal after a denial joined the denied request %s", first)
	}
}

// Matching by the call is the LLM gateway's alone: on the decision API, which can carry the
// approval ID, an identical call without approval_id neither redeems nor joins; it opens its
// own request and the grant stays for the call that names it.
func TestDecideWithoutApprovalIDDoesNotMatchByCall(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1741570283,"model":"gpt-4.1",
"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
{"id":"call_1","type":"function","function":{"name":"send_email","arguments":"{\"to\":\"ops@example.com\"}"}}]},
"finish_reason":"tool_calls"}]}`)
	}))
	defer upstream.Close()
	g, otherKey, approverKey := llmGateway(t, upstream.URL)
	_, _, b := g.postLLM("/v1/chat/completions", otherKey, `{"model":"gpt-4.1","messages":[{"role":"user","content":"mail ops"}]}`)
	m := approvalIDInNotice.FindStringSubmatch(b)
	if m == nil {
		t.Fatalf("no approval notice: %s", b)
	}
	if status, code, _ := g.approve(t, m[1], approverKey); status != http.StatusOK {
		t.Fatalf("approve: %d %s", status, code)
	}
	const call = `{"tool":"send_email","params":{"to":"ops@example.com"}}`
	for range 2 {
		if _, a := g.post("/v1/decide", otherKey, []byte(call)); a.Decision != "CONSTRAIN" || a.ApprovalID == m[1] || a.ApprovalID == "" {
			t.Fatalf("decide without approval_id: %+v, want a new request of its own", a)
		}
	}
	if _, a := g.post("/v1/decide", otherKey, []byte(`{"tool":"send_email","params":{"to":"ops@example.com"},"approval_id":"`+m[1]+`"}`)); a.Decision != "ALLOW" {
		t.Fatalf("decide naming the grant: %+v, want ALLOW", a)
	}
}
