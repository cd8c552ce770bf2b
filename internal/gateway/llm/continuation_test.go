package llm

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The memory of removed calls is bounded in calls and in time, and keyed by agent.
func TestRemovedCallsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	r := newRemovedCalls(2, time.Hour)
	r.now = func() time.Time { return now }
	call := []removedCall{{itemType: "function_call", callID: "call_1", notice: "n"}}
	for i := range 3 {
		r.put("agent-1", fmt.Sprintf("resp_%d", i), call)
	}
	if r.get("agent-1", "resp_0") != nil {
		t.Error("the oldest entry outlived the bound")
	}
	if r.get("agent-1", "resp_2") == nil || r.get("agent-1", "resp_1") == nil {
		t.Error("recent entries were lost")
	}
	if r.get("agent-2", "resp_2") != nil {
		t.Error("another agent continuing from the response got its removed calls")
	}
	now = now.Add(2 * time.Hour)
	if r.get("agent-1", "resp_2") != nil {
		t.Error("an entry outlived its TTL")
	}
	big := newRemovedCalls(1000, time.Hour)
	many := make([]removedCall, removedMaxCalls+50)
	big.put("agent-1", "resp_many", many)
	if n := len(big.get("agent-1", "resp_many")); n != removedMaxCalls {
		t.Errorf("%d calls kept for one response, want at most %d", n, removedMaxCalls)
	}
	for i := range 20 {
		big.put("agent-1", fmt.Sprintf("resp_%d", i), many)
	}
	if big.total > 1000 || big.get("agent-1", "resp_many") != nil || big.get("agent-1", "resp_19") == nil {
		t.Errorf("%d calls remembered, want at most 1000, the oldest responses dropped first", big.total)
	}
	off := newRemovedCalls(-1, time.Hour)
	off.put("agent-1", "resp_x", call)
	if off.get("agent-1", "resp_x") != nil {
		t.Error("a negative bound remembered something")
	}
}

// The next turn of a Responses conversation continued with previous_response_id gets the output
// of the call the gateway removed (its notice), unless the agent answered the call itself.
func TestPreviousResponseGetsRemovedCallOutput(t *testing.T) {
	r := jsonRig(t, "responses_two_tools.json")
	r.checker.set("send_email", Verdict{Action: Deny, DecisionID: "dec-deny"})
	post := func(body string) { postGateway(t, r.gw, "/v1/responses", body) }
	post(`{"model":"m","input":"hi"}`)
	id := objectID(t, fixture(t, "responses_two_tools.json"))
	callID := removedCallID(t, r)
	post(`{"model":"m","previous_response_id":"` + id + `","input":"and then?"}`)
	sent := r.upstream.lastRequest()
	if !strings.Contains(sent, `{"call_id":"`+callID+`","output":"[portcullis] The tool \"send_email\" is unavailable`) ||
		!strings.Contains(sent, `"type":"function_call_output"}`) || !strings.Contains(sent, `{"content":"and then?","role":"user","type":"message"}`) {
		t.Errorf("the next turn was sent as %s", sent)
	}
	// The agent answered the call itself: nothing is added.
	post(`{"model":"m","previous_response_id":"` + id + `","input":[{"type":"function_call_output","call_id":"` + callID + `","output":"mine"}]}`)
	if sent := r.upstream.lastRequest(); strings.Count(sent, callID) != 1 || strings.Contains(sent, "portcullis") {
		t.Errorf("an answered call was answered again: %s", sent)
	}
	// An unknown previous response: the request goes as written.
	post(`{"model":"m","previous_response_id":"resp_unknown","input":"x"}`)
	if sent := r.upstream.lastRequest(); strings.Contains(sent, "function_call_output") {
		t.Errorf("outputs added to an unknown response's turn: %s", sent)
	}
}

func objectID(t *testing.T, b []byte) string {
	t.Helper()
	o, err := parseObject(b)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := o.str("id")
	return id
}

// removedCallID is the call_id of the send_email call in the fixture.
func removedCallID(t *testing.T, r *rig) string {
	t.Helper()
	r.checker.mu.Lock()
	defer r.checker.mu.Unlock()
	for _, c := range r.checker.calls {
		if c.Name == "send_email" {
			return c.CallID
		}
	}
	t.Fatal("send_email was never checked")
	return ""
}

// Anthropic's provider-run MCP servers are offered only when the policy could allow them, by the
// name "mcp:<name>", as the Responses mcp tool is; a toolset naming a removed server goes too.
func TestAnthropicMCPServersFiltered(t *testing.T) {
	r := jsonRig(t, "messages_one_tool.json")
	r.checker.hidden["mcp:crm"] = true
	postGateway(t, r.gw, "/v1/messages", `{"model":"m","max_tokens":9,
"messages":[{"role":"user","content":"hi"}],
"mcp_servers":[{"type":"url","url":"https://crm.example/mcp","name":"crm"},{"type":"url","url":"https://wiki.example/mcp","name":"wiki"}],
"tools":[{"type":"mcp_toolset","mcp_server_name":"crm"},{"type":"mcp_toolset","mcp_server_name":"wiki"}]}`)
	sent := r.upstream.lastRequest()
	if strings.Contains(sent, "crm") || !strings.Contains(sent, `"mcp_server_name":"wiki"`) || !strings.Contains(sent, "wiki.example") {
		t.Errorf("sent upstream: %s", sent)
	}
	// Every server removed: the field goes.
	r.checker.hidden["mcp:wiki"] = true
	postGateway(t, r.gw, "/v1/messages", `{"model":"m","max_tokens":9,
"messages":[{"role":"user","content":"hi"}],"mcp_servers":[{"type":"url","url":"https://wiki.example/mcp","name":"wiki"}]}`)
	if sent := r.upstream.lastRequest(); strings.Contains(sent, "mcp_servers") {
		t.Errorf("sent upstream: %s", sent)
	}
}
