package llm

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"
)

// The benchmarks compare the same request sent to the fake upstream directly and through
// the gateway (both over loopback HTTP), so the difference is what the gateway adds:
// parsing, the Checker calls (an in-memory fake here), rewriting and one more hop.

var benchRequests = map[Format]string{
	ChatCompletions: `{"model":"gpt-4.1","messages":[{"role":"user","content":"What is the weather in Paris?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}`,
	Messages:        `{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"What is the weather in Paris?"}],"tools":[{"name":"get_weather","input_schema":{"type":"object"}}]}`,
	Responses:       `{"model":"gpt-4.1","input":"What is the weather in Paris?","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}]}`,
}

func benchPost(b *testing.B, client *http.Client, url string, f Format, body string, key string) *http.Response {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		b.Fatal(err)
	}
	if f == Messages {
		req.Header.Set("X-Api-Key", key)
		req.Header.Set("Anthropic-Version", "2023-06-01")
	} else {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		b.Fatalf("status %d: %s", resp.StatusCode, msg)
	}
	return resp
}

func p50(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2].Nanoseconds())
}

// BenchmarkNonStreamed: one non-streamed call whose response carries one (allowed) tool call.
func BenchmarkNonStreamed(b *testing.B) {
	for _, tc := range []struct {
		name, fixture string
		format        Format
	}{
		{"chat", "chat_one_tool.json", ChatCompletions},
		{"messages", "messages_one_tool.json", Messages},
		{"responses", "responses_one_tool.json", Responses},
	} {
		r := jsonRig(b, tc.fixture)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		path := map[Format]string{ChatCompletions: "/v1/chat/completions", Messages: "/v1/messages", Responses: "/v1/responses"}[tc.format]
		for _, target := range []struct{ name, url, key string }{
			{"direct", r.upstream.srv.URL + path, providerKey},
			{"gateway", r.gateway.URL + path, agentKey},
		} {
			b.Run(tc.name+"/"+target.name, func(b *testing.B) {
				lat := make([]time.Duration, 0, b.N)
				b.ReportAllocs()
				for b.Loop() {
					start := time.Now()
					resp := benchPost(b, client, target.url, tc.format, benchRequests[tc.format], target.key)
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					lat = append(lat, time.Since(start))
				}
				b.ReportMetric(p50(lat), "p50-ns")
			})
		}
	}
}

// BenchmarkStream: a streamed text answer (8 text deltas). Reports time to the first text
// event and the time per event after it.
func BenchmarkStream(b *testing.B) {
	for _, tc := range []struct {
		name, fixture string
		format        Format
		path          string
	}{
		{"chat", "chat_stream_text.sse", ChatCompletions, "/v1/chat/completions"},
		{"messages", "messages_stream_text.sse", Messages, "/v1/messages"},
	} {
		r := sseRig(b, tc.fixture)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		body := benchRequests[tc.format][:len(benchRequests[tc.format])-1] + `,"stream":true}`
		for _, target := range []struct{ name, url, key string }{
			{"direct", r.upstream.srv.URL + tc.path, providerKey},
			{"gateway", r.gateway.URL + tc.path, agentKey},
		} {
			b.Run(tc.name+"/"+target.name, func(b *testing.B) {
				var ttfb, perChunk []time.Duration
				for b.Loop() {
					start := time.Now()
					resp := benchPost(b, client, target.url, tc.format, body, target.key)
					sc := bufio.NewScanner(resp.Body)
					events, first := 0, time.Time{}
					for sc.Scan() {
						if len(sc.Bytes()) == 0 {
							continue
						}
						if bytes.HasPrefix(sc.Bytes(), []byte("data:")) {
							if events == 0 {
								first = time.Now()
								ttfb = append(ttfb, first.Sub(start))
							}
							events++
						}
					}
					resp.Body.Close()
					if events > 1 {
						perChunk = append(perChunk, time.Since(first)/time.Duration(events-1))
					}
				}
				b.ReportMetric(p50(ttfb), "ttfb-p50-ns")
				b.ReportMetric(p50(perChunk), "chunk-p50-ns")
			})
		}
	}
}

// BenchmarkRewriteChatToolCall isolates the gateway's own work on one non-streamed
// response with one tool call (parse, check, re-encode), without any network.
func BenchmarkRewriteChatToolCall(b *testing.B) {
	raw := fixture(b, "chat_one_tool.json")
	g, _ := New(Config{}, newChecker())
	mc := &modelCall{ctx: b.Context(), g: g, format: ChatCompletions, caller: Caller{AgentID: "agent-1"}, id: "mc"}
	b.ReportAllocs()
	for b.Loop() {
		o, err := parseObject(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := (chatCodec{}).response(mc, o); err != nil {
			b.Fatal(err)
		}
		_ = o.bytes()
	}
}

// discardWriter is a ResponseWriter that throws the body away (and flushes nothing).
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Flush()                      {}

// BenchmarkStreamTextChunk is the gateway's own work per streamed text delta: parse the
// upstream event, decide it carries no tool call, write and flush it.
func BenchmarkStreamTextChunk(b *testing.B) {
	for _, tc := range []struct {
		name   string
		format Format
		ev     sseEvent
	}{
		{"chat", ChatCompletions, sseEvent{data: []byte(`{"id":"chatcmpl-S1","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_b3f1157249","choices":[{"index":0,"delta":{"content":" weather"},"logprobs":null,"finish_reason":null}]}`)}},
		{"messages", Messages, sseEvent{name: "content_block_delta", data: []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" weather"}}`)}},
		{"responses", Responses, sseEvent{name: "response.output_text.delta", data: []byte(`{"type":"response.output_text.delta","sequence_number":0,"item_id":"msg_r1","output_index":0,"content_index":0,"delta":" weather","logprobs":[]}`)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g, _ := New(Config{}, newChecker())
			mc := &modelCall{ctx: b.Context(), g: g, format: tc.format, caller: Caller{AgentID: "agent-1"}, id: "mc"}
			st := codecs[tc.format].stream(mc)
			out := newSSEWriter(&discardWriter{h: http.Header{}})
			b.ReportAllocs()
			for b.Loop() {
				if rs, ok := st.(*responsesStream); ok {
					rs.seq = 0 // replay the same event: keep its sequence number current
				}
				if _, err := st.event(tc.ev, out); err != nil {
					b.Fatal(err)
				}
				out.flush()
			}
		})
	}
}

// BenchmarkConversationSession is what placing a header-less Chat Completions call in its
// conversation's session costs: the digest of the conversation's beginning (a system message
// and the first user message, in a 12-turn conversation).
func BenchmarkConversationSession(b *testing.B) {
	var msgs bytes.Buffer
	msgs.WriteString(`{"model":"gpt-4.1","messages":[{"role":"system","content":"You are the office assistant. Answer briefly and use the tools you are given."},{"role":"user","content":"Summarise the price news and mail it to the team."}`)
	for range 5 {
		msgs.WriteString(`,{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"fetch_url","arguments":"{\"url\":\"https://news.example/prices\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"Prices are up 3% on last year."}`)
	}
	msgs.WriteString(`]}`)
	req, err := parseObject(msgs.Bytes())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if s := conversationSession(ChatCompletions, "agent-1", req); s == "" {
			b.Fatal("no session")
		}
	}
}
