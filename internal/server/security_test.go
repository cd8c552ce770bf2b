package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
)

// forgedKey is an API key with the victim's key id (not secret: the ledger and `keys list`
// show it) and a made-up secret of the right length.
func (r *rig) forgedKey(t *testing.T) string {
	t.Helper()
	// The secret's last character changed: a random key may itself end in '_' (base64url), so the
	// secret is not found by looking for the last underscore.
	last := byte('A')
	if r.victimKey[len(r.victimKey)-1] == 'A' {
		last = 'B'
	}
	forged := r.victimKey[:len(r.victimKey)-1] + string(last)
	if forged == r.victimKey {
		t.Fatal("the forged key is the real one")
	}
	return forged
}

// openApproval has the victim call a CONSTRAIN tool and returns the pending approval's id.
func (r *rig) openApproval(t *testing.T) string {
	t.Helper()
	a, err := r.post(t, nil, "/v1/decide", r.victimKey, `{"tool":"wire_money","params":{"amount":10}}`)
	if err != nil || a.Decision != "CONSTRAIN" || a.ApprovalID == "" {
		t.Fatalf("opening an approval: %+v, %v", a, err)
	}
	return a.ApprovalID
}

// A caller holding no credential sends requests that name the victim's key id and the victim's
// pending approval with a long wait. They must be refused at once, taking none of the victim's
// concurrency slots: the victim's own calls still run.
func TestUnauthenticatedCallerCannotHoldAgentSlots(t *testing.T) {
	const slots = 2
	r := newRig(t, Limits{MaxConcurrencyPerAgent: slots, MaxApprovalWait: 30 * time.Second})
	approvalID := r.openApproval(t)
	forged := r.forgedKey(t)

	// The attacker's client gives up after a while so that, on a gateway that lets it wait,
	// the test ends instead of hanging for the whole wait.
	attacker := &http.Client{Timeout: 5 * time.Second}
	type result struct {
		a   answer
		err error
	}
	results := make(chan result, slots)
	for range slots {
		go func() {
			a, err := r.post(t, attacker, "/v1/decide", forged,
				`{"tool":"fetch_customer_names","params":{},"approval_id":"`+approvalID+`","wait_seconds":30}`)
			results <- result{a, err}
		}()
	}
	var got []result
	timeout := time.After(3 * time.Second)
collect:
	for len(got) < slots {
		select {
		case res := <-results:
			got = append(got, res)
		case <-timeout:
			break collect
		}
	}
	// While any forged request may still be waiting, the victim calls.
	a, err := r.post(t, nil, "/v1/decide", r.victimKey, `{"tool":"fetch_customer_names","params":{}}`)
	if err != nil || a.Status != http.StatusOK || a.Decision != "ALLOW" {
		t.Errorf("victim's call while forged requests were sent: %+v, %v; want 200 ALLOW", a, err)
	}
	if len(got) < slots {
		t.Fatalf("%d of %d forged requests were still held after 3s; want each refused at once", slots-len(got), slots)
	}
	for _, res := range got {
		if res.err != nil || res.a.Status != http.StatusUnauthorized || res.a.code() != "credential_invalid" {
			t.Errorf("forged request: %+v, %v; want 401 credential_invalid", res.a, res.err)
		}
	}
	// The attempts are evidence: each is on the record as a denial of an unverified caller.
	denied := 0
	for _, rec := range r.records(t) {
		if rec.Decision == "deny" && rec.Agent != nil && !rec.Agent.Verified && strings.HasPrefix(rec.Reason, "credential_invalid") {
			denied++
		}
	}
	if denied != slots {
		t.Errorf("%d forged attempts recorded, want %d", denied, slots)
	}
}

// An authenticated agent may long-poll only its own approvals: naming another agent's approval
// does not hold the request (nor its slot) for the wait.
func TestDecideWaitsOnlyOnOwnApprovals(t *testing.T) {
	r := newRig(t, Limits{MaxConcurrencyPerAgent: 4, MaxApprovalWait: 30 * time.Second})
	approvalID := r.openApproval(t)

	client := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	a, err := r.post(t, client, "/v1/decide", r.otherKey,
		`{"tool":"fetch_customer_names","params":{},"approval_id":"`+approvalID+`","wait_seconds":30}`)
	if err != nil {
		t.Fatalf("another agent's wait on the victim's approval: %v (held %s)", err, time.Since(start).Round(time.Millisecond))
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("another agent's request waited %s on the victim's approval", elapsed)
	}
	if a.Status != http.StatusOK || a.Decision != "ALLOW" {
		t.Errorf("other agent's call: %+v", a)
	}

	// The owner's own wait still waits (here until its wait_seconds end: nobody approves).
	start = time.Now()
	a, err = r.post(t, client, "/v1/decide", r.victimKey,
		`{"tool":"wire_money","params":{"amount":10},"approval_id":"`+approvalID+`","wait_seconds":1}`)
	if err != nil || a.Decision != "CONSTRAIN" || a.ApprovalID != approvalID {
		t.Fatalf("victim's long-poll: %+v, %v", a, err)
	}
	if elapsed := time.Since(start); elapsed < 900*time.Millisecond {
		t.Errorf("the owner's long-poll returned after %s; want it to wait about 1s", elapsed)
	}
	// Once approved, the owner's waiting call is released by the approval and redeems it.
	done := make(chan answer, 1)
	go func() {
		a, _ := r.post(t, client, "/v1/decide", r.victimKey,
			`{"tool":"wire_money","params":{"amount":10},"approval_id":"`+approvalID+`","wait_seconds":20}`)
		done <- a
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := r.appr.Approve(context.Background(), approvalID, approval.Approver{ID: "alice", Kind: approval.Human,
		Scopes: []approval.Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}}, "ok"); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-done:
		if a.Decision != "ALLOW" {
			t.Errorf("approved call: %+v, want ALLOW", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the owner's long-poll was not released by the approval")
	}
}

// A signed request is authenticated once, before its slot, and Check decides for that agent:
// its single-use nonce is not spent twice (which would deny it as a replay), and a replay of
// the same request is refused.
func TestSignedDecideAuthenticatedOnce(t *testing.T) {
	r := newRig(t, Limits{MaxConcurrencyPerAgent: 4, MaxApprovalWait: time.Second})
	req := r.signed(t, "/v1/decide", `{"tool":"fetch_customer_names","params":{"n":1}}`)
	replay := req.Clone(context.Background())
	replay.Body = http.NoBody
	a, err := r.do(nil, req)
	if err != nil || a.Status != http.StatusOK || a.Decision != "ALLOW" {
		t.Fatalf("signed request: %+v, %v; want 200 ALLOW", a, err)
	}
	var allowed bool
	for _, rec := range r.records(t) {
		if rec.DecisionID == a.DecisionID {
			allowed = rec.Agent != nil && rec.Agent.ID == "victim" && rec.Agent.Verified && rec.Agent.Method == "http_signature"
		}
	}
	if !allowed {
		t.Errorf("the decision's record does not name the verified signing agent")
	}
	replay = r.signedReplay(t, req)
	a, err = r.do(nil, replay)
	if err != nil || a.Status != http.StatusUnauthorized || a.code() != "signature_replayed" {
		t.Errorf("replayed signed request: %+v, %v; want 401 signature_replayed", a, err)
	}
}

// signedReplay copies a signed request's headers onto a new request with the same body.
func (r *rig) signedReplay(t *testing.T, orig *http.Request) *http.Request {
	t.Helper()
	req, err := http.NewRequest(orig.Method, orig.URL.String(), strings.NewReader(`{"tool":"fetch_customer_names","params":{"n":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = orig.Header.Clone()
	return req
}

// Every body of the API is read one way only: a key repeated (exactly or up to case) anywhere
// in it is refused with duplicate_key naming the path, before anything decides on it.
func TestBodiesWithRepeatedKeysAreRefused(t *testing.T) {
	r := newRig(t, Limits{MaxConcurrencyPerAgent: 4, MaxApprovalWait: time.Second})
	tests := []struct {
		name, path, body string
		status           int
		code, where      string
	}{
		{"params exact duplicate", "/v1/decide", `{"tool":"fetch_customer_names","params":{"limit":5000,"limit":50}}`,
			400, "duplicate_key", "$.params.limit"},
		{"params case-variant duplicate", "/v1/decide", `{"tool":"fetch_customer_names","params":{"limit":1,"LIMIT":2}}`,
			400, "duplicate_key", "$.params.LIMIT"},
		{"params nested duplicate", "/v1/decide", `{"tool":"send_text","params":{"msgs":[{"text":"safe"},{"text":"evil","text":"safe"}]}}`,
			400, "duplicate_key", "$.params.msgs[1].text"},
		{"params duplicate on a CONSTRAIN call", "/v1/decide", `{"tool":"wire_money","params":{"amount":1,"amount":100000}}`,
			400, "duplicate_key", "$.params.amount"},
		{"body case-variant field", "/v1/decide", `{"tool":"delete_file","TOOL":"fetch_customer_names","params":{}}`,
			400, "duplicate_key", "$.TOOL"},
		{"body exact duplicate field", "/v1/decide", `{"tool":"fetch_customer_names","tool":"delete_file","params":{}}`,
			400, "duplicate_key", "$.tool"},
		{"body field in another case", "/v1/decide", `{"TOOL":"fetch_customer_names","params":{}}`,
			400, "bad_request", `"TOOL"`},
		{"outcome duplicate", "/v1/outcome", `{"decision_id":"dec_a","decision_id":"dec_b","ran":true}`,
			400, "duplicate_key", "$.decision_id"},
		{"outcome result duplicate", "/v1/outcome", `{"decision_id":"dec_a","ran":true,"result":{"rows":1,"Rows":2}}`,
			400, "duplicate_key", "$.result.Rows"},
		{"lone surrogate", "/v1/decide", `{"tool":"fetch_customer_names","params":{"q":"\ud800"}}`,
			400, "invalid_utf8", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := r.post(t, nil, tc.path, r.victimKey, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != tc.status || a.code() != tc.code || a.Decision != "DENY" {
				t.Fatalf("%s: %+v; want %d %s DENY", tc.body, a, tc.status, tc.code)
			}
			if !strings.Contains(a.Error.Message, tc.where) {
				t.Errorf("message %q does not name %s", a.Error.Message, tc.where)
			}
		})
	}
	// Nothing was decided, let alone allowed, on any of them.
	for _, rec := range r.records(t) {
		if rec.Decision != "deny" {
			t.Errorf("a refused body was decided: %s %s", rec.Tool, rec.Decision)
		}
	}
}

type anyApprover struct{}

func (anyApprover) Approver(context.Context, *http.Request) (approval.Approver, error) {
	return approval.Approver{ID: "alice", Kind: approval.Human, Scopes: []approval.Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}}, nil
}

func TestApprovalBodyWithRepeatedKeysIsRefused(t *testing.T) {
	r := newRig(t, Limits{MaxConcurrencyPerAgent: 4, MaxApprovalWait: time.Second})
	id := r.openApproval(t)
	// The rig's server is rebuilt with the approvals API on the same guard-backed handler.
	s := r.server
	s.RegisterApprovals(r.appr, anyApprover{}, time.Second)
	for _, body := range []string{`{"comment":"fine","comment":"x"}`, `{"comment":"fine","Comment":"x"}`} {
		a, err := r.post(t, nil, "/v1/approvals/"+id+"/approve", "", body)
		if err != nil || a.Status != http.StatusBadRequest || a.code() != "duplicate_key" {
			t.Errorf("%s: %+v, %v; want 400 duplicate_key", body, a, err)
		}
	}
	if ar, err := r.appr.Get(context.Background(), id); err != nil || ar.State != approval.Pending {
		t.Errorf("after refused bodies the request is %v, %v; want pending", ar.State, err)
	}
}
