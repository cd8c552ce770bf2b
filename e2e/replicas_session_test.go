package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/sdk"
)

// require_proposal across replicas: the call a model proposed through the LLM gateway of
// replica 1 runs through the decision API of replica 2 (the proposal is in Redis), once, in its
// session only.
func TestReplicasShareProposals(t *testing.T) {
	fake := newFakeProvider(t)
	rp := startReplicas(t, func(dir string) {
		writePolicy(t, dir, `agent_id: report-generator-v1
default_action: DENY
require_proposal: 5m
rules:
  - name: weather
    tool: get_weather
    action: ALLOW
`)
		appendConfig(t, dir, "llm:\n  upstreams:\n    chat_completions: {base_url: \""+fake.srv.URL+"/v1\"}\n")
	})
	ctx := context.Background()
	// decide answers "ALLOW", or the code of the refusal.
	decide := func(d *daemon, session string) string {
		t.Helper()
		dec, err := sdk.New(d.url, sdk.WithAPIKey(rp.agentKey)).Decide(ctx, sdk.DecideRequest{Tool: "get_weather",
			Params: map[string]any{"unit": "celsius", "city": "Paris"}, SessionID: session})
		if e, ok := errors.AsType[*sdk.Error](err); ok {
			return e.Code
		}
		if err != nil {
			t.Fatal(err)
		}
		return dec.Decision + " " + dec.Message
	}
	if got := decide(rp.d2, "task-1"); got != "not_proposed" {
		t.Fatalf("a call no model proposed: %s", got)
	}
	// The model proposes get_weather {"city":"Paris","unit":"celsius"} at replica 1.
	req, _ := http.NewRequest(http.MethodPost, rp.d1.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"weather","messages":[{"role":"user","content":"Weather in Paris?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}`))
	req.Header.Set("Authorization", "Bearer "+rp.agentKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Portcullis-Session", "task-1")
	if status, body := do(t, req); status != 200 || !strings.Contains(body, `"get_weather"`) {
		t.Fatalf("model call at replica 1: %d %s", status, body)
	}
	if got := decide(rp.d2, "task-2"); got != "not_proposed" {
		t.Errorf("the proposal in another session: %s", got)
	}
	if got := decide(rp.d2, "task-1"); !strings.HasPrefix(got, "ALLOW") {
		t.Fatalf("the proposed call at replica 2: %s", got)
	}
	if got := decide(rp.d1, "task-1"); got != "not_proposed" {
		t.Errorf("one proposal used twice: %s", got)
	}
}
