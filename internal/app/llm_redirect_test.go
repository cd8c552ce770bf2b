package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// The gateway never follows an upstream redirect: the provider key and the conversation stay
// with the configured upstream, and the agent gets 502 upstream_redirect in the provider's format.
func TestLLMUpstreamRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	var leakedKey atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		leakedKey.Store(r.Header.Get("X-Api-Key") + r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[]}`)
	}))
	defer other.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", other.URL+r.URL.Path)
		w.WriteHeader(http.StatusTemporaryRedirect)
		io.WriteString(w, `{"moved":true}`)
	}))
	defer upstream.Close()
	g, _, _ := llmGateway(t, upstream.URL)
	for _, tc := range []struct{ path, body, errType string }{
		{"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"secret plans"}]}`, `"type":"error"`},
		{"/v1/chat/completions", `{"model":"gpt-4.1","messages":[{"role":"user","content":"secret plans"}]}`, `"code":"upstream_redirect"`},
		{"/v1/responses", `{"model":"gpt-4.1","input":"secret plans"}`, `"code":"upstream_redirect"`},
		{"/v1/responses", `{"model":"gpt-4.1","stream":true,"input":"secret plans"}`, `"code":"upstream_redirect"`},
	} {
		status, h, b := g.postLLM(tc.path, g.key, tc.body)
		if status != http.StatusBadGateway || h.Get("X-Portcullis-Error") != "upstream_redirect" || !strings.Contains(b, tc.errType) {
			t.Errorf("%s: %d %q %s, want 502 upstream_redirect in the provider's format", tc.path, status, h.Get("X-Portcullis-Error"), b)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times (the redirect target saw credential %q)", n, leakedKey.Load())
	}
}
