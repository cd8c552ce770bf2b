package mcp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// swapHandler serves whatever handler is current: a remote MCP server that restarts.
type swapHandler struct {
	mu sync.Mutex
	h  http.Handler
}

func (s *swapHandler) set(h http.Handler) {
	s.mu.Lock()
	s.h = h
	s.mu.Unlock()
}

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.h
	s.mu.Unlock()
	h.ServeHTTP(w, r)
}

// TestRemoteUpstreamRestart: a remote upstream that restarted knows none of its old sessions
// and answers the gateway's next request 404 (session not found). That request never ran, so
// the gateway reconnects and sends it once more: the agent's first call after the restart
// succeeds, and runs exactly once.
func TestRemoteUpstreamRestart(t *testing.T) {
	ctx := context.Background()
	var runs atomic.Int32
	var servers []*sdk.Server
	t.Cleanup(func() {
		// A restarted server's sessions outlive its handler: end them, as the process exit would.
		for _, s := range servers {
			for ss := range s.Sessions() {
				_ = ss.Close()
			}
		}
	})
	newHandler := func() http.Handler {
		s := sdk.NewServer(&sdk.Implementation{Name: "remote", Version: "1"}, nil)
		servers = append(servers, s)
		sdk.AddTool(s, &sdk.Tool{Name: "echo"}, func(_ context.Context, _ *sdk.CallToolRequest, in textIn) (*sdk.CallToolResult, any, error) {
			runs.Add(1)
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: in.Text}}}, nil, nil
		})
		s.AddPrompt(&sdk.Prompt{Name: "greet"}, func(context.Context, *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
			return &sdk.GetPromptResult{Messages: []*sdk.PromptMessage{{Role: "user", Content: &sdk.TextContent{Text: "hello"}}}}, nil
		})
		return sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s }, &sdk.StreamableHTTPOptions{JSONResponse: true})
	}
	sw := &swapHandler{h: newHandler()}
	srv := httptest.NewServer(sw)
	t.Cleanup(srv.Close)
	gw, err := New(ctx, Options{Guard: allowPort{}, CallTimeout: 10 * time.Second}, []Upstream{{Name: "remote",
		NewTransport: func() sdk.Transport {
			// No standalone GET stream: its failure would mark the session down before the
			// call, and this test is about the call that finds out.
			return &sdk.StreamableClientTransport{Endpoint: srv.URL, MaxRetries: -1, DisableStandaloneSSE: true}
		}}})
	if err != nil {
		t.Fatal(err)
	}
	cs := connectAgent(t, gw)
	call := func(text string) {
		t.Helper()
		r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "remote__echo", Arguments: map[string]any{"text": text}})
		if err != nil {
			t.Fatalf("call %s: %v", text, err)
		}
		if got := r.Content[0].(*sdk.TextContent).Text; r.IsError || got != text {
			t.Fatalf("call %s: isError=%v %q", text, r.IsError, got)
		}
	}
	call("before")
	sw.set(newHandler()) // restarted: the old session id is unknown now
	call("after")
	if n := runs.Load(); n != 2 {
		t.Errorf("echo ran %d times, want 2", n)
	}
	sw.set(newHandler())
	if _, err := cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: "remote__greet"}); err != nil {
		t.Errorf("prompt after a restart: %v", err)
	}
}

// connectAgent connects an agent (key "k") to gw over in-memory transports; the cleanup ends
// the agent's session and then closes gw.
func connectAgent(t *testing.T, gw *Gateway) *sdk.ClientSession {
	t.Helper()
	ctx := context.Background()
	at, gt := sdk.NewInMemoryTransports()
	gss, err := gw.Server(EnvCredentials("k", "")).Connect(ctx, gt, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil).Connect(ctx, at, &sdk.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.Close()
		_ = gss.Wait()
		_ = gw.Close()
	})
	return cs
}

// osPipes are two OS pipes, (aR, aW) and (bR, bW).
func osPipes(t *testing.T) (aR, aW, bR, bW *os.File) {
	t.Helper()
	aR, aW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	bR, bW, err = os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return aR, aW, bR, bW
}
