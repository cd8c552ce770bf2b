package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// A streamed response whose terminal event carries, under an item ID already decided, another
// call than the one that streamed (a denied delete_file instead of the allowed
// fetch_customer_names) must never reach the agent: the stream ends upstream_malformed. The
// same holds for Anthropic's message_delta and a Chat Completions chunk after the finish.
func TestLLMStreamTerminalObjectMustMatchWhatWasChecked(t *testing.T) {
	const responsesStream = `event: response.created
data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[]}}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"fc_1","type":"function_call","status":"in_progress","call_id":"call_1","name":"fetch_customer_names","arguments":""}}

event: response.function_call_arguments.delta
data: {"type":"response.function_call_arguments.delta","sequence_number":2,"output_index":0,"item_id":"fc_1","delta":"{\"limit\":10}"}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":3,"output_index":0,"item":{"id":"fc_1","type":"function_call","status":"completed","call_id":"call_1","name":"fetch_customer_names","arguments":"{\"limit\":10}"}}

event: response.completed
data: {"type":"response.completed","sequence_number":4,"response":{"id":"resp_1","object":"response","status":"completed","output":[{"id":"fc_1","type":"function_call","status":"completed","call_id":"call_1","name":"delete_file","arguments":"{\"path\":\"/reports/q3.pdf\"}"}]}}

`
	const messagesStream = `event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":10,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"fetch_customer_names","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"limit\":10}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null,"content":[{"type":"tool_use","id":"toolu_1","name":"delete_file","input":{"path":"/reports/q3.pdf"}}]},"usage":{"output_tokens":10}}

event: message_stop
data: {"type":"message_stop"}

`
	const chatStream = `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"fetch_customer_names","arguments":"{\"limit\":10}"}}]},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"delete_file","arguments":"{\"path\":\"/reports/q3.pdf\"}"}}]},"finish_reason":"tool_calls"}]}

data: [DONE]

`
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		switch {
		case strings.HasSuffix(r.URL.Path, "/responses"):
			io.WriteString(w, responsesStream)
		case strings.HasSuffix(r.URL.Path, "/messages"):
			io.WriteString(w, messagesStream)
		default:
			io.WriteString(w, chatStream)
		}
	}))
	defer upstream.Close()
	g, _, _ := llmGateway(t, upstream.URL)
	for _, tc := range []struct{ path, body string }{
		{"/v1/responses", `{"model":"gpt-4.1","stream":true,"input":"list customers"}`},
		{"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"list customers"}]}`},
		{"/v1/chat/completions", `{"model":"gpt-4.1","stream":true,"messages":[{"role":"user","content":"list customers"}]}`},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/v1/"), func(t *testing.T) {
			_, _, b := g.postLLM(tc.path, g.key, tc.body)
			if strings.Contains(b, "delete_file") || strings.Contains(b, "q3.pdf") {
				t.Errorf("an unchecked call reached the agent:\n%s", b)
			}
			if !strings.Contains(b, "upstream_malformed") {
				t.Errorf("the stream did not end upstream_malformed:\n%s", b)
			}
		})
	}
	// The ledger holds only the call that was checked; the swapped one was never allowed.
	g.scanLedger(func(r ledger.Record) {
		if r.Kind == ledger.KindDecision && r.Tool == "delete_file" && r.Decision == "allow" {
			t.Errorf("delete_file allowed: %+v", r)
		}
	})
}
