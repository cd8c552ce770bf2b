package llm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// denyAll denies every tool call: under it no tool call may ever leave the gateway,
// whatever the upstream sends.
type denyAll struct{ fakeChecker }

func (*denyAll) CheckToolCall(context.Context, Caller, ToolCall) (Verdict, error) {
	return Verdict{Action: Deny, DecisionID: "fuzz"}, nil
}

func fuzzCall(t testing.TB, f Format) *modelCall {
	g, err := New(Config{MaxEventBytes: 1 << 16, MaxResponseBytes: 1 << 16}, &denyAll{})
	if err != nil {
		t.Fatal(err)
	}
	return &modelCall{ctx: context.Background(), g: g, format: f, caller: Caller{AgentID: "agent-1"}, id: "mc"}
}

// leaksToolCall reports whether an event the gateway wrote carries a tool call.
func leaksToolCall(f Format, data []byte) bool {
	o, err := parseObject(data)
	if err != nil {
		return false
	}
	switch f {
	case ChatCompletions:
		chs, _ := o.objs("choices")
		for _, ch := range chs {
			d, _ := ch.obj("delta")
			if d != nil && d.has("tool_calls") && string(bytes.TrimSpace(d["tool_calls"])) != "[]" {
				return true
			}
			if m, _ := ch.obj("message"); m != nil && m.has("tool_calls") {
				return true
			}
		}
	case Messages:
		if cb, _ := o.obj("content_block"); cb != nil {
			if t, _ := cb.str("type"); t == "tool_use" {
				return true
			}
		}
		if m, _ := o.obj("message"); m != nil {
			bs, _ := m.objs("content")
			for _, b := range bs {
				if t, _ := b.str("type"); t == "tool_use" {
					return true
				}
			}
		}
		bs, _ := o.objs("content")
		for _, b := range bs {
			if t, _ := b.str("type"); t == "tool_use" {
				return true
			}
		}
	case Responses:
		if it, _ := o.obj("item"); it != nil {
			if ok, _, _, _ := checkedItem(it); ok {
				return true
			}
		}
		resp := o
		if r, _ := o.obj("response"); r != nil {
			resp = r
		}
		items, _ := resp.objs("output")
		for _, it := range items {
			if ok, _, _, _ := checkedItem(it); ok {
				return true
			}
		}
	}
	return false
}

func streamSeeds(f *testing.F) {
	for _, name := range []string{"chat_stream_two_tools.sse", "messages_stream_two_tools.sse", "responses_stream_two_tools.sse", "chat_stream_text.sse"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte("data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":-1,\"function\":{\"name\":\"x\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n"))
	// A server repeating the whole function.name in every delta: one call, named once.
	f.Add([]byte("data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"name\":\"x\",\"arguments\":\"{\"}}]}}]}\n\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"x\",\"arguments\":\"}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n"))
	f.Add([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"name\":\"x\",\"input\":{}}]}}\n\n"))
	// A terminal response that swaps the streamed call, and an arguments.done that disagrees.
	f.Add(responsesTerminalStream("", `{"id":"fc_1","type":"function_call","call_id":"call_1","name":"send_email","arguments":"{}"}`))
	f.Add(responsesTerminalStream(`"{\"city\":\"Rome\"}"`, `{"id":"fc_1","type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}`))
	f.Add([]byte("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"content\":[{\"type\":\"tool_use\",\"name\":\"x\",\"input\":{}}]}}\n\n"))
}

func FuzzStream(f *testing.F) {
	streamSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, format := range []Format{ChatCompletions, Messages, Responses} {
			mc := fuzzCall(t, format)
			st := codecs[format].stream(mc)
			rec := httptest.NewRecorder()
			out := newSSEWriter(rec)
			r := newSSEReader(bytes.NewReader(in), mc.g.cfg.MaxEventBytes)
			for {
				ev, err := r.next()
				if err != nil {
					if errors.Is(err, io.EOF) {
						_ = st.end(out)
					}
					break
				}
				done, err := st.event(ev, out)
				if err != nil || done {
					break
				}
			}
			outR := newSSEReader(bytes.NewReader(rec.Body.Bytes()), 1<<20)
			for {
				ev, err := outR.next()
				if err != nil {
					break
				}
				if leaksToolCall(format, ev.data) {
					t.Fatalf("%s: a tool call left the gateway under deny-all: %s", format, ev.data)
				}
			}
		}
	})
}

func FuzzResponse(f *testing.F) {
	for _, name := range []string{"chat_two_tools.json", "messages_two_tools.json", "responses_two_tools.json", "chat_malformed_args.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"choices":[{"message":{"tool_calls":[{"type":"custom","custom":{"name":"x","input":"y"}}]}}]}`))
	f.Add([]byte(`{"output":[{"type":"computer_call","call_id":"c","action":{"type":"click"}}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, format := range []Format{ChatCompletions, Messages, Responses} {
			mc := fuzzCall(t, format)
			o, err := parseObject(in)
			if err != nil {
				continue
			}
			if _, err := codecs[format].response(mc, o); err != nil {
				continue
			}
			if out := o.bytes(); leaksToolCall(format, out) {
				t.Fatalf("%s: a tool call left the gateway under deny-all: %s", format, out)
			}
		}
	})
}

// FuzzRequest feeds arbitrary request bodies through the whole handler: it must answer
// (never panic or hang) and never forward a request the checker was not asked about.
func FuzzRequest(f *testing.F) {
	f.Add("/v1/chat/completions", []byte(`{"model":"m","messages":[{"role":"tool","tool_call_id":"c","content":[{"type":"text","text":"hi"}]}],"tools":[{"type":"function","function":{"name":"get_weather"}}]}`))
	f.Add("/v1/messages", []byte(`{"model":"m","system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"x"}]}]}`))
	f.Add("/v1/responses", []byte(`{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":"x"}],"tools":[{"type":"web_search"}]}`))
	f.Add("/v1/responses", []byte("{\"input\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		if !strings.HasPrefix(path, "/") {
			return
		}
		var forwarded [][]byte
		rec := fuzzServe(t, path, body, &forwarded)
		if rec.Code == http.StatusOK {
			t.Fatalf("a request to an upstream that answers 500 succeeded: %s", rec.Body)
		}
		if len(forwarded) > 0 && !bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
			t.Fatalf("a body that is not a JSON object was forwarded: %q", body)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func FuzzSSEReader(f *testing.F) {
	f.Add([]byte("event: a\ndata: 1\ndata: 2\n\n: comment\r\ndata: x\r\n\r\n"))
	f.Add([]byte("data: [DONE]\n\n"))
	f.Add([]byte("data"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := newSSEReader(bytes.NewReader(in), 256)
		var evs []sseEvent
		for len(evs) <= len(in) {
			ev, err := r.next()
			if err != nil {
				break
			}
			evs = append(evs, ev)
		}
		if len(evs) > len(in) {
			t.Fatalf("%d events from %d bytes", len(evs), len(in))
		}
		// Writing the events and reading them back gives the same events.
		rec := httptest.NewRecorder()
		w := newSSEWriter(rec)
		for _, ev := range evs {
			if strings.ContainsAny(ev.name, "\r\n") {
				return
			}
			w.write(ev)
		}
		back := newSSEReader(bytes.NewReader(rec.Body.Bytes()), 1<<20)
		for i, want := range evs {
			got, err := back.next()
			if err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			if got.name != want.name || !bytes.Equal(bytes.ReplaceAll(got.data, []byte("\r"), nil), bytes.ReplaceAll(want.data, []byte("\r"), nil)) {
				t.Fatalf("event %d: got %q/%q, want %q/%q", i, got.name, got.data, want.name, want.data)
			}
		}
	})
}

// fuzzServe sends body to path through a gateway whose every upstream answers 500, appends each
// body the gateway forwarded upstream to *forwarded, and returns the gateway's answer.
func fuzzServe(t *testing.T, path string, body []byte, forwarded *[][]byte) *httptest.ResponseRecorder {
	t.Helper()
	gw, err := New(Config{
		Upstreams: map[Format]Upstream{
			ChatCompletions: {BaseURL: "http://upstream.test/v1"},
			Responses:       {BaseURL: "http://upstream.test/v1"},
			Messages:        {BaseURL: "http://upstream.test/v1"},
		},
		MaxRequestBytes: 1 << 16,
		Client: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			b, _ := io.ReadAll(r.Body)
			*forwarded = append(*forwarded, b)
			return &http.Response{StatusCode: 500, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
		})},
	}, newChecker())
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "http://gateway.test/", bytes.NewReader(body))
	req.URL.Path = path
	req.Header.Set("Authorization", "Bearer "+agentKey)
	rec := httptest.NewRecorder()
	gw.ServeHTTP(rec, req)
	return rec
}
