package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// A Client sends the outcome token of a decision it made without being told, sends the one it
// is given instead when there is one, forgets tokens once their outcome is answered, and keeps
// a bounded number of them.
func TestOutcomeTokenSentTransparently(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/decide":
			mu.Lock()
			n++
			id := fmt.Sprintf("dec_%d", n)
			mu.Unlock()
			_ = json.NewEncoder(w).Encode(map[string]string{"decision": Allow, "decision_id": id, "outcome_token": "pot1.tok-" + id})
		case "/v1/outcome":
			var req struct {
				DecisionID   string `json:"decision_id"`
				OutcomeToken string `json:"outcome_token"`
			}
			_ = json.NewDecoder(r.Body).Decode(&req)
			mu.Lock()
			seen = append(seen, req.OutcomeToken)
			mu.Unlock()
			if req.OutcomeToken == "" {
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"error":{"code":"outcome_token_invalid"}}`))
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]string{"decision_id": req.DecisionID, "action": "pass"})
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := New(srv.URL, WithAPIKey("pcl_test"))
	d, err := c.Decide(ctx, DecideRequest{Tool: "t"})
	if err != nil || d.OutcomeToken != "pot1.tok-dec_1" {
		t.Fatalf("decide: %+v %v", d, err)
	}
	if _, err := c.Outcome(ctx, OutcomeRequest{DecisionID: d.DecisionID, Ran: true}); err != nil {
		t.Fatalf("outcome: %v", err)
	}
	// Answered: forgotten, so a second report goes without it (and the gateway refuses it).
	if _, err := c.Outcome(ctx, OutcomeRequest{DecisionID: d.DecisionID, Ran: true}); !IsDenied(err) {
		t.Fatalf("second outcome: %v", err)
	}
	// Another client (another process) passes the token explicitly.
	other := New(srv.URL, WithAPIKey("pcl_test"))
	d2, _ := c.Decide(ctx, DecideRequest{Tool: "t"})
	if _, err := other.Outcome(ctx, OutcomeRequest{DecisionID: d2.DecisionID, OutcomeToken: d2.OutcomeToken}); err != nil {
		t.Fatalf("explicit token: %v", err)
	}
	if want := []string{"pot1.tok-dec_1", "", "pot1.tok-dec_2"}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("tokens sent %q, want %q", seen, want)
	}

	var tk outcomeTokens
	for i := range 3 * maxRememberedTokens {
		id := fmt.Sprint(i)
		tk.remember(id, "x")
		if i%2 == 0 {
			tk.forget(id)
		}
	}
	if len(tk.byID) > maxRememberedTokens || len(tk.order) > 2*maxRememberedTokens {
		t.Fatalf("remembered %d tokens in an order of %d", len(tk.byID), len(tk.order))
	}
	if tk.lookup(fmt.Sprint(3*maxRememberedTokens-1)) != "x" {
		t.Fatal("the newest token was forgotten")
	}
}
