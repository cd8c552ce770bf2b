package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// clientCredentialsEndpoint is a local OAuth 2.0 token endpoint (RFC 6749 §4.4, its JSON
// answer as §5.1 has it): client "portcullis-gw" with secret gets token, for an hour, when it
// names resource (RFC 8707). It counts the tokens it issued.
func clientCredentialsEndpoint(t *testing.T, secret, resource, token string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	issued := &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, sec, _ := r.BasicAuth()
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodPost || id != "portcullis-gw" || sec != secret || r.PostForm.Get("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client"})
			return
		}
		if r.PostForm.Get("resource") != resource {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_target"})
			return
		}
		issued.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(srv.Close)
	return srv, issued
}

// startBearerServer runs e2e/bearer-server.mjs (the TypeScript SDK's Streamable HTTP server
// behind a bearer-token check) and returns its /mcp URL.
func startBearerServer(t *testing.T, token string) string {
	t.Helper()
	filesystemServer(t) // skips when e2e/node_modules or node is absent
	port := freePort(t)
	return startHTTPServer(t, exec.Command("node", "bearer-server.mjs", port, token), port)
}

// seenAuthorization is every Authorization header the bearer server received.
func seenAuthorization(t *testing.T, mcpURL string) []string {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(mcpURL, "/mcp") + "/seen")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var seen []string
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
		t.Fatal(err)
	}
	return seen
}

// TestMCPAuthenticatedRemoteUpstream: `portcullis serve` in front of a real MCP server (the
// TypeScript SDK over Streamable HTTP) that requires a bearer token. Without credentials the
// upstream refuses the gateway, which says so in /readyz; with the OAuth client credentials
// grant against a local token endpoint, tools list and calls work, and the upstream never sees
// the agent's key — only the gateway's own token.
func TestMCPAuthenticatedRemoteUpstream(t *testing.T) {
	const token = "upstream-access-token-7f3a"
	upstream := startBearerServer(t, token)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Without credentials: the upstream answers 401, the gateway starts with it down.
	dir, _, _ := initData(t)
	writePolicy(t, dir, allowAll)
	appendConfig(t, dir, "mcp:\n  upstreams:\n    - name: saas\n      url: "+upstream+"\n")
	d := startServe(t, dir)
	if _, body := readyz(t, d.url); body["status"] != "degraded" || !strings.Contains(body["reason"], `"saas"`) || !strings.Contains(body["reason"], "Unauthorized") {
		t.Errorf("without credentials: /readyz = %v", body)
	}
	d.stop(t)

	// With the client credentials grant: the secret in a file, the token fetched by the gateway.
	tokens, issued := clientCredentialsEndpoint(t, "gw-client-secret", upstream, token)
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, allowAll)
	secret := filepath.Join(dir, "saas-client-secret")
	if err := os.WriteFile(secret, []byte("gw-client-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, dir, `mcp:
  upstreams:
    - name: saas
      url: `+upstream+`
      oauth:
        token_url: `+tokens.URL+`/token
        client_id: portcullis-gw
        client_secret_file: saas-client-secret
`)
	d = startServe(t, dir)
	cs := httpClient(t, ctx, d.url, agentKey)
	if names := toolNames(t, ctx, cs); len(names) != 1 || names[0] != "saas__whoami" {
		t.Fatalf("tools through the gateway: %v", names)
	}
	if got := text(call(t, ctx, cs, "saas__whoami", map[string]any{"greeting": "hello"})); got != "hello, tenant acme" {
		t.Errorf("call through the gateway: %q", got)
	}
	if issued.Load() != 1 {
		t.Errorf("tokens issued: %d, want 1 (cached across requests)", issued.Load())
	}
	seen := seenAuthorization(t, upstream)
	withToken := 0
	for _, h := range seen {
		if strings.Contains(h, agentKey) {
			t.Fatalf("the agent's key reached the upstream: %q", h)
		}
		if h == "Bearer "+token {
			withToken++
		}
	}
	if withToken < 3 { // initialize, tools/list, tools/call at least
		t.Errorf("the upstream got the gateway's token on %d requests: %q", withToken, seen)
	}
	d.stop(t)
	auditVerify(t, dir)
}
