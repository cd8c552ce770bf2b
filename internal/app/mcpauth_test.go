package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/config"
)

// guardedUpstream is a remote MCP server that accepts only bearer tokens it was told are valid,
// and records the Authorization and X-Tenant headers of every request it gets.
type guardedUpstream struct {
	mu      sync.Mutex
	valid   map[string]bool
	auth    []string
	tenants []string
}

func (g *guardedUpstream) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		a := r.Header.Get("Authorization")
		g.auth = append(g.auth, a)
		g.tenants = append(g.tenants, r.Header.Get("X-Tenant"))
		ok := g.valid[strings.TrimPrefix(a, "Bearer ")]
		g.mu.Unlock()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (g *guardedUpstream) seen() (auth, tenants []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.auth...), append([]string(nil), g.tenants...)
}

// tokenEndpoint answers the client credentials grant of client "gw" with secret, issuing
// tok-1, tok-2, ... and making each valid at the upstream.
func tokenEndpoint(t *testing.T, secret string, up *guardedUpstream) *httptest.Server {
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, sec, _ := r.BasicAuth()
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		if id != "gw" || sec != secret || r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("resource") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		up.mu.Lock()
		n++
		tok := fmt.Sprintf("tok-%d", n)
		up.valid[tok] = true
		up.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// agentKey is an agent's MCP client credential: its API key as a bearer token.
type agentKey struct{ key string }

func (k agentKey) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+k.key)
	return http.DefaultTransport.RoundTrip(r)
}

// A remote upstream that requires a bearer token gets the gateway's own, from the client
// credentials grant, plus the configured headers; never the agent's key. When the upstream
// stops accepting the token (revoked before it expired), the next call gets a new token and is
// sent once more, and succeeds.
func TestMCPUpstreamOAuthClientCredentials(t *testing.T) {
	ctx := context.Background()
	up := &guardedUpstream{valid: map[string]bool{}}
	srv := sdk.NewServer(&sdk.Implementation{Name: "saas", Version: "1"}, nil)
	type in struct {
		Text string `json:"text"`
	}
	sdk.AddTool(srv, &sdk.Tool{Name: "echo", Description: "Echoes text."}, func(_ context.Context, _ *sdk.CallToolRequest, a in) (*sdk.CallToolResult, any, error) {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: a.Text}}}, nil, nil
	})
	upSrv := httptest.NewServer(up.wrap(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil)))
	t.Cleanup(upSrv.Close)
	tokens := tokenEndpoint(t, "client-secret-1", up)

	dir, cfgPath, key, cfg := initDefault(t)
	pol := "agent_id: report-generator-v1\ndefault_action: DENY\nrules:\n  - name: echo\n    tool: saas__echo\n    action: ALLOW\n"
	if err := os.WriteFile(filepath.Join(dir, "policies", "report-generator-v1.yaml"), []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "saas-client-secret")
	if err := os.WriteFile(secretFile, []byte("client-secret-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.MCP.Upstreams = []config.MCPUpstream{{Name: "saas", URL: upSrv.URL,
		Headers: map[string]config.HeaderValue{"X-Tenant": {Value: "acme"}},
		OAuth:   &config.MCPOAuth{TokenURL: tokens.URL + "/token", ClientID: "gw", ClientSecretFile: secretFile}}}
	_, gwURL := serveOpened(t, cfg, cfgPath)
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil).Connect(ctx,
		&sdk.StreamableClientTransport{Endpoint: gwURL + "/mcp", HTTPClient: &http.Client{Transport: agentKey{key}}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	callEcho := func(text string) {
		t.Helper()
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "saas__echo", Arguments: map[string]any{"text": text}})
		if err != nil || res.IsError || len(res.Content) != 1 || res.Content[0].(*sdk.TextContent).Text != text {
			t.Fatalf("call through the gateway: %+v %v", res, err)
		}
	}
	callEcho("one")

	// The token is revoked at the upstream before it expires.
	up.mu.Lock()
	up.valid["tok-1"] = false
	up.mu.Unlock()
	callEcho("two")

	auth, tenants := up.seen()
	for i, h := range auth {
		if strings.Contains(h, key) {
			t.Fatalf("request %d to the upstream carried the agent's key: %q", i, h)
		}
		if h != "Bearer tok-1" && h != "Bearer tok-2" {
			t.Errorf("request %d to the upstream: Authorization %q", i, h)
		}
		if tenants[i] != "acme" {
			t.Errorf("request %d to the upstream: X-Tenant %q", i, tenants[i])
		}
	}
	if last := auth[len(auth)-1]; last != "Bearer tok-2" {
		t.Errorf("after the revocation the upstream got %q, want the new token", last)
	}
	if len(auth) < 3 || auth[len(auth)-2] != "Bearer tok-1" {
		t.Errorf("the revoked token was not refused once before the retry: %q", auth)
	}
}

// An upstream whose secret is not set keeps the gateway from starting, naming the setting.
func TestMCPUpstreamCredentialUnsetFailsStart(t *testing.T) {
	_, cfgPath, _, cfg := initDefault(t)
	cfg.MCP.Upstreams = []config.MCPUpstream{{Name: "saas", URL: "http://127.0.0.1:1/mcp",
		Headers: map[string]config.HeaderValue{"Authorization": {ValueEnv: "PORTCULLIS_TEST_UNSET_TOKEN"}}}}
	a, err := Open(context.Background(), cfg, cfgPath, slog.New(slog.DiscardHandler))
	if err == nil {
		a.Close(context.Background())
		t.Fatal("opened")
	}
	if !strings.Contains(err.Error(), "mcp.upstreams[0].headers.Authorization: the environment variable PORTCULLIS_TEST_UNSET_TOKEN is not set") {
		t.Errorf("error: %v", err)
	}
}
