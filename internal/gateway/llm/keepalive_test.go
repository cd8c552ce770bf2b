package llm

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// postGateway posts body to path through gw in-process as the agent and returns the raw answer
// (for a stream, the server-sent events the agent received).
func postGateway(t *testing.T, gw http.Handler, path, body string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://gateway.test"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+agentKey)
	resp, err := (&http.Client{Transport: inProcess{gw}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// While a tool call is held until its arguments are complete, the agent's stream is not silent:
// an SSE comment goes out every KeepAlive, in every format, so a load balancer that cuts idle
// connections does not cut a stream whose model writes a long tool input.
func TestKeepAliveWhileACallIsHeld(t *testing.T) {
	cases := []struct {
		path, body, head, tail string
	}{
		{"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"ci"}}]},"finish_reason":null}]}` + "\n\n",
			`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Paris\"}"}}]},"finish_reason":null}]}` + "\n\n" +
				`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}` + "\n\ndata: [DONE]\n\n"},
		{"/v1/messages", `{"model":"m","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n" +
				"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}\n\n" +
				"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":5}}\n\n" +
				"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"},
		{"/v1/responses", `{"model":"m","stream":true,"input":"hi"}`,
			"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"output\":[]}}\n\n" +
				"event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{\"id\":\"fc_1\",\"type\":\"function_call\",\"call_id\":\"call_1\",\"name\":\"get_weather\",\"arguments\":\"\"}}\n\n",
			"event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"sequence_number\":2,\"output_index\":0,\"item\":{\"id\":\"fc_1\",\"type\":\"function_call\",\"call_id\":\"call_1\",\"name\":\"get_weather\",\"arguments\":\"{}\"}}\n\n" +
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"resp_1\",\"output\":[{\"id\":\"fc_1\",\"type\":\"function_call\",\"call_id\":\"call_1\",\"name\":\"get_weather\",\"arguments\":\"{}\"}]}}\n\n"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				up := &scripted{ctype: "text/event-stream", bodies: make(chan *io.PipeWriter, 1)}
				gw, _ := bubbleGateway(t, up)
				gw.cfg.KeepAlive = time.Second
				go func() {
					pw := <-up.bodies
					_, _ = io.WriteString(pw, tc.head)
					time.Sleep(4 * time.Second) // the model writes a long tool input
					_, _ = io.WriteString(pw, tc.tail)
					_ = pw.Close()
				}()
				got := postGateway(t, gw, tc.path, tc.body)
				held, after, ok := strings.Cut(got, "get_weather")
				if !ok {
					t.Fatalf("the call never came: %s", got)
				}
				if n := strings.Count(held, ": keep-alive\n\n"); n < 3 {
					t.Errorf("%d keep-alives while the call was held for 4s (want one a second):\n%s", n, got)
				}
				if strings.Contains(after, "keep-alive") {
					t.Errorf("keep-alives after the stream moved on:\n%s", got)
				}
			})
		})
	}
}

// An error event the gateway makes in a Responses stream carries the next sequence number, not 0.
func TestResponsesStreamErrorSequenceNumber(t *testing.T) {
	cut := "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"output\":[]}}\n\n" +
		"event: response.in_progress\ndata: {\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":{\"id\":\"resp_1\",\"output\":[]}}\n\n"
	r := newRig(t, []byte(cut), http.StatusOK, "text/event-stream")
	b := postGateway(t, r.gw, "/v1/responses", `{"model":"m","stream":true,"input":"hi"}`)
	var last map[string]any
	for l := range strings.SplitSeq(b, "\n") {
		if d, ok := strings.CutPrefix(l, "data: "); ok {
			last = nil
			_ = json.Unmarshal([]byte(d), &last)
		}
	}
	if last["type"] != "error" || last["sequence_number"] != float64(2) {
		t.Errorf("last event %v, want an error with sequence_number 2:\n%s", last, b)
	}
}
