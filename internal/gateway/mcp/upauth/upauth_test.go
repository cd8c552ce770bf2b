package upauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// recorder is a server that records the headers of each request it gets.
type recorder struct {
	mu  sync.Mutex
	got []http.Header
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.got = append(r.got, req.Header.Clone())
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *recorder) last() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[len(r.got)-1]
}

func get(t *testing.T, c *http.Client, url string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// Values come from the environment and from a file; a rewritten file is used from the next
// request on, without a restart (token rotation).
func TestHeadersFromEnvAndRotatedFile(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	t.Setenv("UPAUTH_TEST_KEY", "key-1")
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("tok-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := NewHeaders(srv.URL+"/mcp", []Header{
		{Name: "x-api-key", Value: Secret{Path: "h.x-api-key", Env: "UPAUTH_TEST_KEY"}},
		{Name: "Authorization", Value: Secret{Path: "h.Authorization", File: file, Prefix: "Bearer "}},
		{Name: "X-Tenant", Value: Secret{Path: "h.X-Tenant", Literal: "acme"}},
	}, http.DefaultTransport)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	get(t, c, srv.URL+"/mcp")
	h := rec.last()
	if h.Get("X-Api-Key") != "key-1" || h.Get("Authorization") != "Bearer tok-1" || h.Get("X-Tenant") != "acme" {
		t.Fatalf("headers: %v", h)
	}
	// Rotation: a new file (another size, so the change shows whatever the clock's resolution).
	if err := os.WriteFile(file, []byte("tok-2-rotated"), 0o600); err != nil {
		t.Fatal(err)
	}
	get(t, c, srv.URL+"/mcp")
	if got := rec.last().Get("Authorization"); got != "Bearer tok-2-rotated" {
		t.Errorf("after rotation: %q", got)
	}
	// A file emptied or broken fails the request, naming the setting, never the value.
	if err := os.WriteFile(file, []byte("tok-3\r\nX-Evil: 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(srv.URL + "/mcp")
	if err == nil || !strings.Contains(err.Error(), "h.Authorization") || strings.Contains(err.Error(), "tok-3") {
		t.Errorf("broken file: %v", err)
	}
}

// A request to another origin (where a redirect points) carries none of the headers.
func TestHeadersOnlyToTheUpstreamsOrigin(t *testing.T) {
	elsewhere := &recorder{}
	other := httptest.NewServer(elsewhere)
	defer other.Close()
	rec := &recorder{}
	mux := http.NewServeMux()
	mux.Handle("/mcp", rec)
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, other.URL+"/x", http.StatusFound) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	t.Setenv("UPAUTH_TEST_KEY", "key-1")
	tr, err := NewHeaders(srv.URL+"/mcp", []Header{{Name: "X-Api-Key", Value: Secret{Path: "p", Env: "UPAUTH_TEST_KEY"}}}, http.DefaultTransport)
	if err != nil {
		t.Fatal(err)
	}
	get(t, &http.Client{Transport: tr}, srv.URL+"/moved")
	if len(elsewhere.got) != 1 || elsewhere.last().Get("X-Api-Key") != "" {
		t.Errorf("the redirect's target got %v", elsewhere.got)
	}
}

// An unset variable or a missing file fails at start, naming the setting.
func TestHeadersMissingValueFailsAtStart(t *testing.T) {
	for _, s := range []Secret{
		{Path: "mcp.upstreams[0].headers.X-A", Env: "UPAUTH_TEST_UNSET"},
		{Path: "mcp.upstreams[0].headers.X-A", File: filepath.Join(t.TempDir(), "absent")},
	} {
		_, err := NewHeaders("http://127.0.0.1:1/mcp", []Header{{Name: "X-A", Value: s}}, http.DefaultTransport)
		if err == nil || !strings.Contains(err.Error(), "mcp.upstreams[0].headers.X-A") {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

// tokenServer is an RFC 6749 token endpoint for the client credentials grant: it checks the
// client's Basic credentials and answers tokens tok-1, tok-2, ... valid for lifetime.
type tokenServer struct {
	secret   string
	lifetime int // seconds
	mu       sync.Mutex
	forms    []map[string]string
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, sec, ok := r.BasicAuth()
	_ = r.ParseForm()
	s.mu.Lock()
	form := map[string]string{"client_id": id}
	for k := range r.PostForm {
		form[k] = r.PostForm.Get(k)
	}
	s.forms = append(s.forms, form)
	n := len(s.forms)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok || sec != s.secret || r.PostForm.Get("grant_type") != "client_credentials" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"bad client"}`))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok-%d", n), "token_type": "Bearer", "expires_in": s.lifetime})
}

func (s *tokenServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.forms)
}

// The token is fetched once and reused, with the resource indicator, audience and scopes; it is
// fetched again a margin before it expires (the clock is the test's), and with a rotated secret.
func TestClientCredentialsCachesAndRenews(t *testing.T) {
	ts := &tokenServer{secret: "s1", lifetime: 600}
	srv := httptest.NewServer(ts)
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("s1"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h, err := NewClientCredentials(OAuth{Path: "o", Endpoint: "https://mcp.example/mcp", TokenURL: srv.URL + "/token", ClientID: "gw",
		Secret: Secret{Path: "o", File: file}, Scopes: []string{"a", "b"}, Audience: "aud", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	src, err := h.TokenSource(context.Background())
	if err != nil || src == nil {
		t.Fatalf("token source: %v %v", src, err)
	}
	for range 3 {
		if tok, err := src.Token(); err != nil || tok.AccessToken != "tok-1" {
			t.Fatalf("token: %v %v", tok, err)
		}
	}
	f := ts.forms[0]
	if ts.count() != 1 || f["client_id"] != "gw" || f["resource"] != "https://mcp.example/mcp" || f["audience"] != "aud" || f["scope"] != "a b" {
		t.Fatalf("token requests: %v", ts.forms)
	}
	// 600 s lifetime: renewed a minute before it expires, not sooner.
	now = now.Add(530 * time.Second)
	if tok, _ := src.Token(); tok.AccessToken != "tok-1" {
		t.Errorf("renewed too early: %v", tok.AccessToken)
	}
	now = now.Add(20 * time.Second)
	if tok, _ := src.Token(); tok == nil || tok.AccessToken != "tok-2" {
		t.Errorf("not renewed before expiry: %v", tok)
	}
	// The secret rotates: the next token request uses the new one.
	ts.mu.Lock()
	ts.secret = "s2-longer"
	ts.mu.Unlock()
	if err := os.WriteFile(file, []byte("s2-longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	if tok, err := src.Token(); err != nil || tok.AccessToken != "tok-3" {
		t.Errorf("after the secret's rotation: %v %v", tok, err)
	}
}

// A refused client secret is an error naming the setting and the server's error code, never
// the secret.
func TestClientCredentialsRefused(t *testing.T) {
	srv := httptest.NewServer(&tokenServer{secret: "right", lifetime: 60})
	defer srv.Close()
	t.Setenv("UPAUTH_TEST_SECRET", "wrong-s3cr3t")
	h, err := NewClientCredentials(OAuth{Path: "mcp.upstreams[0].oauth", Endpoint: "https://m/mcp", TokenURL: srv.URL, ClientID: "gw",
		Secret: Secret{Path: "mcp.upstreams[0].oauth", Env: "UPAUTH_TEST_SECRET"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Token()
	if err == nil || !strings.Contains(err.Error(), "mcp.upstreams[0].oauth") || !strings.Contains(err.Error(), "invalid_client") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("refused: %v", err)
	}
}

// Authorize (the upstream answered 401) fetches a new token even though the cached one has not
// expired, adding the scopes the challenge names.
func TestClientCredentialsAuthorizeFetchesANewToken(t *testing.T) {
	ts := &tokenServer{secret: "s", lifetime: 3600}
	srv := httptest.NewServer(ts)
	defer srv.Close()
	t.Setenv("UPAUTH_TEST_SECRET", "s")
	h, err := NewClientCredentials(OAuth{Path: "o", Endpoint: "https://m/mcp", TokenURL: srv.URL, ClientID: "gw", Scopes: []string{"a"},
		Secret: Secret{Path: "o", Env: "UPAUTH_TEST_SECRET"}})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := h.Token(); err != nil || tok.AccessToken != "tok-1" {
		t.Fatal(tok, err)
	}
	resp := &http.Response{StatusCode: 403, Header: http.Header{"Www-Authenticate": {`Bearer error="insufficient_scope", scope="a b"`}}, Body: http.NoBody}
	if err := h.Authorize(context.Background(), httptest.NewRequest("POST", "https://m/mcp", nil), resp); err != nil {
		t.Fatal(err)
	}
	if tok, _ := h.Token(); tok.AccessToken != "tok-2" || ts.forms[1]["scope"] != "a b" {
		t.Errorf("after Authorize: %v, requests %v", tok.AccessToken, ts.forms)
	}
	// A 403 naming no scope not yet asked for is not retried: no new token is fetched.
	resp = &http.Response{StatusCode: 403, Header: http.Header{"Www-Authenticate": {`Bearer error="insufficient_scope", scope="a"`}}, Body: http.NoBody}
	if err := h.Authorize(context.Background(), httptest.NewRequest("POST", "https://m/mcp", nil), resp); err == nil {
		t.Error("a plain 403 was answered with a new token")
	}
	if ts.count() != 2 {
		t.Errorf("token requests after a plain 403: %d, want 2", ts.count())
	}
	// A 401 always gets a new token (revoked before it expired).
	resp = &http.Response{StatusCode: 401, Header: http.Header{}, Body: http.NoBody}
	if err := h.Authorize(context.Background(), httptest.NewRequest("POST", "https://m/mcp", nil), resp); err != nil || ts.count() != 3 {
		t.Errorf("401: %v, %d token requests", err, ts.count())
	}
}

// discoveryServers is an MCP server's protected-resource metadata naming an authorization
// server, and that server's metadata and token endpoint.
func discoveryServers(t *testing.T, ts *tokenServer) (mcpURL, issuer string) {
	t.Helper()
	as := http.NewServeMux()
	asSrv := httptest.NewServer(as)
	t.Cleanup(asSrv.Close)
	as.HandleFunc("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": asSrv.URL, "token_endpoint": asSrv.URL + "/token",
			"authorization_endpoint": asSrv.URL + "/authorize", "response_types_supported": []string{"code"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_basic"}})
	})
	as.Handle("/token", ts)
	rs := http.NewServeMux()
	rsSrv := httptest.NewServer(rs)
	t.Cleanup(rsSrv.Close)
	rs.HandleFunc("/.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"resource": rsSrv.URL + "/mcp", "authorization_servers": []string{asSrv.URL}, "scopes_supported": []string{"mcp"}})
	})
	return rsSrv.URL + "/mcp", asSrv.URL
}

func unauthorized(mcpURL string) *http.Response {
	return &http.Response{StatusCode: 401, Body: http.NoBody, Header: http.Header{"Www-Authenticate": {`Bearer resource_metadata="` +
		strings.TrimSuffix(mcpURL, "/mcp") + `/.well-known/oauth-protected-resource/mcp"`}}}
}

// Without a token URL the first request goes without a token; its 401 leads to the metadata,
// which must name the configured issuer; the token asked for names the resource.
func TestClientCredentialsDiscovery(t *testing.T) {
	ts := &tokenServer{secret: "s", lifetime: 60}
	mcpURL, issuer := discoveryServers(t, ts)
	t.Setenv("UPAUTH_TEST_SECRET", "s")
	h, err := NewClientCredentials(OAuth{Path: "o", Endpoint: mcpURL, Issuer: issuer, ClientID: "gw", Secret: Secret{Path: "o", Env: "UPAUTH_TEST_SECRET"}})
	if err != nil {
		t.Fatal(err)
	}
	if src, err := h.TokenSource(context.Background()); src != nil || err != nil {
		t.Fatalf("before discovery: %v %v", src, err)
	}
	if err := h.Authorize(context.Background(), httptest.NewRequest("POST", mcpURL, nil), unauthorized(mcpURL)); err != nil {
		t.Fatal(err)
	}
	src, _ := h.TokenSource(context.Background())
	if tok, err := src.Token(); err != nil || tok.AccessToken != "tok-1" {
		t.Fatalf("after discovery: %v %v", tok, err)
	}
	if f := ts.forms[0]; f["resource"] != mcpURL || f["scope"] != "mcp" {
		t.Errorf("token request: %v", f)
	}
}

// A discovered authorization server other than the configured issuer is refused before the
// secret is sent anywhere.
func TestClientCredentialsDiscoveryRefusesAnotherIssuer(t *testing.T) {
	ts := &tokenServer{secret: "s", lifetime: 60}
	mcpURL, _ := discoveryServers(t, ts)
	t.Setenv("UPAUTH_TEST_SECRET", "s")
	h, err := NewClientCredentials(OAuth{Path: "o", Endpoint: mcpURL, Issuer: "https://login.example.com", ClientID: "gw", Secret: Secret{Path: "o", Env: "UPAUTH_TEST_SECRET"}})
	if err != nil {
		t.Fatal(err)
	}
	err = h.Authorize(context.Background(), httptest.NewRequest("POST", mcpURL, nil), unauthorized(mcpURL))
	if err == nil || !strings.Contains(err.Error(), "not the configured issuer") {
		t.Errorf("another issuer: %v", err)
	}
	if ts.count() != 0 {
		t.Errorf("the secret went to the token endpoint %d times", ts.count())
	}
}

// With private_key_jwt the client authenticates with an assertion it signs (RFC 7523): issuer
// and subject the client ID, audience the configured issuer; no secret is sent.
func TestClientCredentialsPrivateKeyJWT(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	var got jwt.MapClaims
	var form map[string][]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		form = r.PostForm
		tok, err := jwt.Parse(r.PostForm.Get("client_assertion"), func(*jwt.Token) (any, error) { return &priv.PublicKey, nil },
			jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience("https://login.example.com"))
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		got = tok.Claims.(jwt.MapClaims)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"jwt-tok","token_type":"Bearer","expires_in":60}`))
	}))
	defer srv.Close()
	h, err := NewClientCredentials(OAuth{Path: "o", Endpoint: "https://m/mcp", TokenURL: srv.URL, Issuer: "https://login.example.com", ClientID: "gw",
		AuthMethod: "private_key_jwt", Secret: Secret{Path: "o.private_key_file", File: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := h.Token()
	if err != nil || tok.AccessToken != "jwt-tok" {
		t.Fatalf("token: %v %v", tok, err)
	}
	if got["iss"] != "gw" || got["sub"] != "gw" || got["jti"] == "" {
		t.Errorf("assertion claims: %v", got)
	}
	if form["client_assertion_type"][0] != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || form["client_secret"] != nil || form["client_id"][0] != "gw" {
		t.Errorf("token request: %v", form)
	}
	// A file that is not a key fails at start.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewClientCredentials(OAuth{Path: "o", Endpoint: "https://m/mcp", TokenURL: srv.URL, ClientID: "gw",
		AuthMethod: "private_key_jwt", Secret: Secret{Path: "o.private_key_file", File: keyFile}}); err == nil || !strings.Contains(err.Error(), "o.private_key_file") {
		t.Errorf("not a key: %v", err)
	}
}
