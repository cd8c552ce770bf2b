package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

func writePEM(t *testing.T, dir, name string, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// forgeJWT signs a token with a header of the test's choosing (golang-jwt would not write crit).
func forgeJWT(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sig, err := method.Sign(in, key)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Tokens signed by a trusted issuer (RS256 and ES256) through the real decision API: a crit
// header and a lifetime beyond max_lifetime are refused with their codes; an ordinary token works.
func TestDecideRefusesCritAndLongLivedJWT(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const iss, aud = "https://agents.idp.example", "portcullis"
	keyDir := t.TempDir()
	g := newGatewayWith(t, func(c *config.Config) {
		c.Identity.JWTIssuers = append(c.Identity.JWTIssuers,
			identity.IssuerConfig{Issuer: iss, Audiences: []string{aud}, Algorithms: []string{"RS256", "ES256"},
				KeyFiles:    []string{writePEM(t, keyDir, "rsa.pem", &rsaKey.PublicKey), writePEM(t, keyDir, "ec.pem", &ecKey.PublicKey)},
				MaxLifetime: time.Hour})
	})
	now := time.Now()
	claims := func(exp time.Time) jwt.MapClaims {
		return jwt.MapClaims{"iss": iss, "aud": aud, "sub": "report-generator-v1", "iat": now.Unix(), "exp": exp.Unix()}
	}
	body := []byte(`{"tool":"fetch_sales_data","params":{"quarter":"Q3"}}`)
	tests := []struct {
		name   string
		token  string
		status int
		code   string
	}{
		{"RS256 ordinary", forgeJWT(t, jwt.SigningMethodRS256, rsaKey, map[string]any{"alg": "RS256", "typ": "JWT"}, claims(now.Add(10*time.Minute))), http.StatusOK, ""},
		{"ES256 ordinary", forgeJWT(t, jwt.SigningMethodES256, ecKey, map[string]any{"alg": "ES256", "typ": "JWT"}, claims(now.Add(10*time.Minute))), http.StatusOK, ""},
		{"RS256 crit", forgeJWT(t, jwt.SigningMethodRS256, rsaKey, map[string]any{"alg": "RS256", "crit": []string{"urn:example:must-check"}, "urn:example:must-check": true}, claims(now.Add(10*time.Minute))), http.StatusUnauthorized, "credential_invalid"},
		{"ES256 malformed crit", forgeJWT(t, jwt.SigningMethodES256, ecKey, map[string]any{"alg": "ES256", "crit": "exp"}, claims(now.Add(10*time.Minute))), http.StatusUnauthorized, "credential_malformed"},
		{"RS256 valid for a century", forgeJWT(t, jwt.SigningMethodRS256, rsaKey, map[string]any{"alg": "RS256"}, claims(now.AddDate(100, 0, 0))), http.StatusUnauthorized, "credential_lifetime_exceeded"},
		{"ES256 two hours", forgeJWT(t, jwt.SigningMethodES256, ecKey, map[string]any{"alg": "ES256"}, claims(now.Add(2*time.Hour))), http.StatusUnauthorized, "credential_lifetime_exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, a := g.post("/v1/decide", tc.token, body)
			if status != tc.status {
				t.Fatalf("status %d (%s), want %d", status, fmtErr(a), tc.status)
			}
			if tc.code == "" {
				if a.Error != nil {
					t.Fatalf("error %s", fmtErr(a))
				}
				return
			}
			if a.Decision != "DENY" || a.Error == nil || a.Error.Code != tc.code {
				t.Errorf("decision %s, error %s; want DENY with %s", a.Decision, fmtErr(a), tc.code)
			}
		})
	}
}

func metricsText(t *testing.T, g *gateway) string {
	t.Helper()
	resp, err := http.Get(g.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The attack: 500 KB tool names went into metric labels (/metrics grew to megabytes). Through the
// real decision API, a long name and a name with a newline are refused with invalid_tool_name,
// recorded as DENY with the name cut, and never become a label.
func TestDecideRefusesInvalidToolNames(t *testing.T) {
	g := newGatewayWith(t, func(c *config.Config) { c.Limits.MaxBodyBytes = 2 << 20 })
	long := "fetch_" + strings.Repeat("A", 500<<10)
	for _, tool := range []string{long, "fetch_sales_data\nx", "fetch_sales_data\u202e"} {
		body, _ := json.Marshal(map[string]any{"tool": tool, "params": map[string]any{"quarter": "Q3"}})
		for range 3 {
			status, a := g.post("/v1/decide", g.key, body)
			if status != http.StatusBadRequest || a.Decision != "DENY" || a.Error == nil || a.Error.Code != "invalid_tool_name" {
				t.Fatalf("tool of %d bytes: status %d, decision %s, error %s", len(tool), status, a.Decision, fmtErr(a))
			}
		}
	}
	m := metricsText(t, g)
	if strings.Contains(m, "AAAAAAAAAAAAAAAA") || strings.Contains(m, "fetch_sales_data\\n") || strings.Contains(m, "\u202e") {
		t.Error("/metrics holds an invalid tool name")
	}
	if len(m) > 256<<10 {
		t.Errorf("/metrics is %d bytes", len(m))
	}
	if !strings.Contains(m, `portcullis_decisions_total{agent="report-generator-v1",decision="DENY",tool="invalid"} 9`) {
		t.Errorf("invalid names not counted under tool=\"invalid\":\n%s", grepLines(m, "portcullis_decisions_total"))
	}
	if strings.Contains(g.logBuf(), strings.Repeat("A", 257)) {
		t.Error("the log holds the long name")
	}
	// The ledger holds the refusals, with the name cut and escaped.
	st, err := OpenLedgerStore(context.Background(), g.app.cfg, g.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	denials := 0
	if err := st.Scan(context.Background(), 0, func(e ledger.Entry) error {
		r, err := ledger.ParseRecord(e.Data)
		if err != nil {
			return err
		}
		if strings.HasPrefix(r.Reason, "invalid_tool_name") {
			denials++
			if len(r.Tool) > 256 || r.Decision != "deny" {
				t.Errorf("recorded tool of %d bytes, decision %s", len(r.Tool), r.Decision)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if denials != 9 {
		t.Errorf("%d invalid_tool_name denials recorded, want 9", denials)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The LLM gateway: tool calls the model proposes with an invalid name (huge, or with a newline)
// are removed, decided as invalid_tool_name DENYs in the ledger, and not echoed back whole.
func TestLLMProposedInvalidToolNames(t *testing.T) {
	long := "fetch_customer_names" + strings.Repeat("B", 100<<10)
	calls, _ := json.Marshal([]map[string]any{
		{"id": "call_1", "type": "function", "function": map[string]any{"name": long, "arguments": `{"limit":10}`}},
		{"id": "call_2", "type": "function", "function": map[string]any{"name": "fetch_customer_names\n", "arguments": `{"limit":10}`}},
	})
	upstreamBody := `{"id":"chatcmpl-1","object":"chat.completion","created":1741570283,"model":"gpt-4.1",
"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":` + string(calls) + `},
"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":10,"total_tokens":20}}`
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, upstreamBody)
	}))
	defer upstream.Close()
	t.Setenv("TEST_PROVIDER_KEY", "sk-provider-secret")
	ctx := context.Background()
	_, cfgPath, key, cfg := initDefault(t)
	cfg.LLM.Upstreams = map[string]config.LLMUpstream{"chat_completions": {BaseURL: upstream.URL + "/v1", APIKeyEnv: "TEST_PROVIDER_KEY"}}
	a, err := Open(ctx, cfg, cfgPath, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	gw := httptest.NewServer(a.Handler())
	defer gw.Close()
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4.1","messages":[{"role":"user","content":"list customers"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %.300s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), `"tool_calls"`) {
		t.Errorf("a call with an invalid name reached the agent: %.300s", body)
	}
	if len(body) > 8<<10 {
		t.Errorf("the answer is %d bytes: the name was echoed back", len(body))
	}
	var refused []string
	if err := a.ledgerStore.Scan(ctx, 0, func(e ledger.Entry) error {
		r, err := ledger.ParseRecord(e.Data)
		if err != nil {
			return err
		}
		if r.Kind == ledger.KindDecision && r.Source == "llm" {
			if len(r.Tool) > 256 {
				t.Errorf("recorded a tool name of %d bytes", len(r.Tool))
			}
			if r.Decision == "deny" && strings.HasPrefix(r.Reason, "invalid_tool_name") {
				refused = append(refused, r.Tool)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(refused) != 2 {
		t.Errorf("invalid_tool_name denials recorded: %q, want 2", refused)
	}
}

// MCP over Streamable HTTP through the real app: tools/call with invalid names is refused, nothing
// reaches the upstream, and the ledger holds invalid_tool_name DENYs with the names cut.
func TestMCPHTTPRefusesInvalidToolNames(t *testing.T) {
	m := newMCPSigned(t)
	cs := m.connect(t, m.signer)
	ctx := context.Background()
	for _, name := range []string{"up__echo" + strings.Repeat("z", 200<<10), "up__echo\n", "up__echo\u200b"} {
		r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: map[string]any{"text": "hi"}})
		if err == nil && !r.IsError {
			t.Errorf("name of %d bytes: the call ran", len(name))
		}
	}
	if n := m.calls.Load(); n != 0 {
		t.Errorf("upstream echo ran %d times", n)
	}
	refused := 0
	if err := m.app.ledgerStore.Scan(ctx, 0, func(e ledger.Entry) error {
		r, err := ledger.ParseRecord(e.Data)
		if err != nil {
			return err
		}
		if len(r.Tool) > 256 {
			t.Errorf("a %s record holds a tool name of %d bytes", r.Kind, len(r.Tool))
		}
		if r.Kind == ledger.KindDecision && r.Source == "mcp" && r.Decision == "deny" && strings.HasPrefix(r.Reason, "invalid_tool_name") {
			refused++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if refused != 3 {
		t.Errorf("%d invalid_tool_name denials recorded, want 3", refused)
	}
}
