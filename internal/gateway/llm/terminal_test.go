package llm

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// responsesTerminalStream streams one get_weather call (fc_1) and then a terminal
// response.completed whose output is terminal; argsDone, when not empty, is the arguments of a
// response.function_call_arguments.done event before the item is done.
func responsesTerminalStream(argsDone, terminal string) []byte {
	var b strings.Builder
	seq := 0
	ev := func(typ, data string) {
		fmt.Fprintf(&b, "event: %s\ndata: {\"type\":%q,\"sequence_number\":%d,%s}\n\n", typ, typ, seq, data)
		seq++
	}
	ev("response.created", `"response":{"id":"resp_1","object":"response","status":"in_progress","output":[]}`)
	ev("response.output_item.added", `"output_index":0,"item":{"id":"fc_1","type":"function_call","status":"in_progress","call_id":"call_1","name":"get_weather","arguments":""}`)
	ev("response.function_call_arguments.delta", `"output_index":0,"item_id":"fc_1","delta":"{\"city\":\"Paris\"}"`)
	if argsDone != "" {
		ev("response.function_call_arguments.done", `"output_index":0,"item_id":"fc_1","arguments":`+argsDone)
	}
	ev("response.output_item.done", `"output_index":0,"item":{"id":"fc_1","type":"function_call","status":"completed","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}`)
	ev("response.completed", `"response":{"id":"resp_1","object":"response","status":"completed","output":[`+terminal+`]}`)
	return []byte(b.String())
}

// The terminal response of a Responses stream is what SDKs hand the agent (the completed
// snapshot): under the ID of an item allowed while streaming it must carry the call that was
// checked — same call ID, name and arguments up to whitespace — or the stream ends
// upstream_malformed and the swapped call never reaches the agent.
func TestResponsesTerminalMustBeTheCheckedCall(t *testing.T) {
	const checked = `{"id":"fc_1","type":"function_call","status":"completed","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}`
	for _, tc := range []struct {
		name, argsDone, terminal string
		ok                       bool
		absent                   string // must not reach the agent
	}{
		{name: "same call", terminal: checked, ok: true},
		{name: "same call, arguments spaced differently", terminal: `{"id":"fc_1","type":"function_call","status":"completed","call_id":"call_1","name":"get_weather","arguments":"{ \"city\" : \"Paris\" }"}`, ok: true},
		{name: "name swapped", terminal: `{"id":"fc_1","type":"function_call","status":"completed","call_id":"call_1","name":"send_email","arguments":"{\"city\":\"Paris\"}"}`, absent: "send_email"},
		{name: "arguments swapped", terminal: `{"id":"fc_1","type":"function_call","status":"completed","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\",\"to\":\"mallory@evil.example\"}"}`, absent: "mallory"},
		{name: "call id swapped", terminal: `{"id":"fc_1","type":"function_call","status":"completed","call_id":"call_9","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}`, absent: "call_9"},
		{name: "type changed", terminal: `{"id":"fc_1","type":"shell_call","call_id":"call_1","action":{"commands":["rm -rf /"]}}`, absent: "rm -rf"},
		{name: "decided item repeated", terminal: checked + "," + checked},
		{name: "arguments done disagrees", argsDone: `"{\"city\":\"Paris\",\"to\":\"mallory@evil.example\"}"`, terminal: checked, absent: `"name":"get_weather","arguments"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, responsesTerminalStream(tc.argsDone, tc.terminal), http.StatusOK, "text/event-stream")
			req, _ := http.NewRequest(http.MethodPost, r.gateway.URL+"/v1/responses",
				strings.NewReader(`{"model":"gpt-4.1","stream":true,"input":"weather?"}`))
			req.Header.Set("Authorization", "Bearer "+agentKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(b)
			completed := strings.Contains(body, "event: response.completed")
			switch {
			case tc.argsDone != "":
				// The item itself is refused (its notice replaces it), in the stream and the terminal.
				if strings.Contains(body, `"type":"function_call"`) {
					t.Errorf("a call whose arguments.done disagrees reached the agent:\n%s", body)
				}
			case tc.ok:
				if !completed || strings.Contains(body, "upstream_malformed") {
					t.Errorf("the checked call did not complete:\n%s", body)
				}
			default:
				if completed || !strings.Contains(body, "upstream_malformed") {
					t.Errorf("want the stream to end upstream_malformed without a terminal response:\n%s", body)
				}
			}
			if tc.absent != "" && strings.Contains(body, tc.absent) {
				t.Errorf("%q reached the agent:\n%s", tc.absent, body)
			}
		})
	}
}
