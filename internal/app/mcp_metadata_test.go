package app

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/config"
)

// getWithHost is an unauthenticated request for path on the gateway claiming Host host.
func getWithHost(t *testing.T, m *mcpSigned, method, path, host string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, strings.TrimSuffix(m.url, "/mcp")+path, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The protected-resource metadata, and the 401 pointing to it, never carry the request's Host:
// a client told to fetch metadata (and send its token) wherever the attacker's Host said would
// hand the token to the attacker.
func TestProtectedResourceIgnoresHost(t *testing.T) {
	const evil = "attacker.example"
	m := newMCPSignedWith(t, func(c *config.Config) { c.Listen = "127.0.0.1:8443" })
	resp, body := getWithHost(t, m, http.MethodGet, "/.well-known/oauth-protected-resource/mcp", evil)
	if resp.StatusCode != http.StatusOK || strings.Contains(body, evil) || !strings.Contains(body, `"http://127.0.0.1:8443/mcp"`) {
		t.Errorf("metadata with Host %s: %d %s", evil, resp.StatusCode, body)
	}
	resp, _ = getWithHost(t, m, http.MethodPost, "/mcp", evil)
	if h := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || strings.Contains(h, evil) || !strings.Contains(h, "http://127.0.0.1:8443/.well-known") {
		t.Errorf("401 with Host %s: %d %q", evil, resp.StatusCode, h)
	}

	// A wildcard listen address names no host: without resource_url there is no metadata.
	m = newMCPSignedWith(t, func(c *config.Config) { c.Listen = "0.0.0.0:8443" })
	resp, body = getWithHost(t, m, http.MethodGet, "/.well-known/oauth-protected-resource", evil)
	if resp.StatusCode != http.StatusNotFound || strings.Contains(body, evil) {
		t.Errorf("metadata on a wildcard listen address: %d %s", resp.StatusCode, body)
	}
	resp, _ = getWithHost(t, m, http.MethodPost, "/mcp", evil)
	if h := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || h != "Bearer" {
		t.Errorf("401 on a wildcard listen address: %d %q", resp.StatusCode, h)
	}

	// resource_url, when set, is what is announced.
	m = newMCPSignedWith(t, func(c *config.Config) { c.MCP.ResourceURL = "https://gw.example.com/mcp" })
	if resp, body = getWithHost(t, m, http.MethodGet, "/.well-known/oauth-protected-resource/mcp", evil); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"https://gw.example.com/mcp"`) {
		t.Errorf("metadata with resource_url: %d %s", resp.StatusCode, body)
	}
}
