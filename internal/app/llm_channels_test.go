package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// An OpenAI-compatible server that repeats function.name in every tool-call delta (seen in the
// wild) proposes one call to fetch_customer_names, not to "fetch_customer_namesfetch_customer_names…":
// the name is taken as the openai-node SDK's stream accumulator takes it (a delta's non-empty name
// replaces the one held; arguments are appended), so the allowed call reaches the agent.
func TestLLMStreamRepeatedToolNameIsOneName(t *testing.T) {
	const chunk = `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"qwen","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"fetch_customer_names","arguments":%q}}]},"finish_reason":null}]}

`
	var stream strings.Builder
	for _, part := range []string{`{"li`, `mit"`, `:10}`} {
		stream.WriteString(strings.Replace(chunk, "%q", strings.ReplaceAll(`"`+strings.ReplaceAll(part, `"`, `\"`)+`"`, "%", "%%"), 1))
	}
	stream.WriteString(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"qwen","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

data: [DONE]

`)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, stream.String())
	}))
	defer upstream.Close()
	g, _, _ := llmGateway(t, upstream.URL)
	status, _, b := g.postLLM("/v1/chat/completions", g.key, `{"model":"qwen","stream":true,"messages":[{"role":"user","content":"list customers"}]}`)
	if status != 200 {
		t.Fatalf("status %d: %s", status, b)
	}
	if !strings.Contains(b, `"name":"fetch_customer_names"`) || !strings.Contains(b, `"arguments":"{\"limit\":10}"`) {
		t.Errorf("the allowed call did not reach the agent whole:\n%s", b)
	}
	if strings.Contains(b, "fetch_customer_namesfetch_customer_names") || strings.Contains(b, "[portcullis]") {
		t.Errorf("the repeated name was concatenated:\n%s", b)
	}
	allowed := false
	g.scanLedger(func(r ledger.Record) {
		if r.Kind == ledger.KindDecision && r.Tool == "fetch_customer_names" && r.Decision == "allow" {
			allowed = true
		}
	})
	if !allowed {
		t.Error("the ledger holds no allowed fetch_customer_names decision")
	}
}
