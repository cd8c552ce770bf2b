package config

import (
	"path/filepath"
	"strings"
	"testing"
)

const remote = "mcp:\n  upstreams:\n    - name: saas\n      url: https://mcp.example.com/mcp\n"

// A remote upstream's credentials parse into their settings, relative files resolved against
// the configuration's directory.
func TestParseMCPUpstreamCredentials(t *testing.T) {
	src := remote + `      headers:
        Authorization: {value_file: secrets/saas-token, prefix: "Bearer "}
        X-Tenant: {value: acme}
        X-Api-Key: {value_env: SAAS_KEY}
      oauth:
        token_url: https://auth.example.com/oauth/token
        client_id: portcullis
        client_secret_env: SAAS_CLIENT_SECRET
        scopes: [mcp.read, mcp.write]
        audience: https://mcp.example.com
`
	// Authorization from both is refused; parse the headers and the oauth block apart.
	c, err := LoadData("/etc/portcullis/portcullis.yaml", []byte("data_dir: d\npolicies: [p]\n"+strings.Replace(src, "        Authorization: {value_file: secrets/saas-token, prefix: \"Bearer \"}\n", "        X-Token: {value_file: secrets/saas-token, prefix: \"Bearer \"}\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	u := c.MCP.Upstreams[0]
	if got := u.Headers["X-Token"]; got.ValueFile != filepath.Join("/etc/portcullis", "secrets/saas-token") || got.Prefix != "Bearer " {
		t.Errorf("value_file not resolved against the configuration's directory: %+v", got)
	}
	if u.Headers["X-Tenant"].Value != "acme" || u.Headers["X-Api-Key"].ValueEnv != "SAAS_KEY" {
		t.Errorf("headers: %+v", u.Headers)
	}
	if o := u.OAuth; o == nil || o.ClientID != "portcullis" || o.ClientSecretEnv != "SAAS_CLIENT_SECRET" || len(o.Scopes) != 2 || o.Audience == "" {
		t.Errorf("oauth: %+v", u.OAuth)
	}
}

// Every mistake is reported at its key path, and no message repeats a literal value refused.
func TestMCPUpstreamCredentialErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key in a header", remote + "      headers:\n        X-A: {value_envv: X}\n", []string{"value_envv"}},
		{"unknown key in oauth", remote + "      oauth:\n        token_uri: https://a/t\n", []string{"token_uri"}},
		{"no source", remote + "      headers:\n        X-A: {prefix: a}\n", []string{"mcp.upstreams[0].headers.X-A: want exactly one of value_env, value_file or value"}},
		{"two sources", remote + "      headers:\n        X-A: {value_env: A, value_file: /a}\n", []string{"mcp.upstreams[0].headers.X-A: want exactly one"}},
		{"bad env name", remote + "      headers:\n        X-A: {value_env: \"A-B\"}\n", []string{"mcp.upstreams[0].headers.X-A.value_env"}},
		{"literal credential", remote + "      headers:\n        Authorization: {value: \"Bearer s3cr3t-value\"}\n", []string{"mcp.upstreams[0].headers.Authorization.value", "carries a credential"}},
		{"literal api key", remote + "      headers:\n        X-Api-Key: {value: s3cr3t-value}\n", []string{"headers.X-Api-Key.value", "value_env or value_file"}},
		{"host", remote + "      headers:\n        Host: {value: evil.example}\n", []string{"mcp.upstreams[0].headers.Host", "framing"}},
		{"content-length", remote + "      headers:\n        content-length: {value: \"0\"}\n", []string{"headers.content-length", "Content-Length is a framing header"}},
		{"transfer-encoding", remote + "      headers:\n        Transfer-Encoding: {value: chunked}\n", []string{"Transfer-Encoding is a framing header"}},
		{"connection", remote + "      headers:\n        Connection: {value: close}\n", []string{"hop-by-hop"}},
		{"session id", remote + "      headers:\n        Mcp-Session-Id: {value: x}\n", []string{"Mcp-Session-Id is a MCP transport header"}},
		{"gateway's own", remote + "      headers:\n        X-Portcullis-Verified-Agent: {value: x}\n", []string{"X-Portcullis-* headers are the gateway's own"}},
		{"invalid name", remote + "      headers:\n        \"X A\": {value: x}\n", []string{"not a valid header name"}},
		{"case duplicates", remote + "      headers:\n        X-A: {value: x}\n        x-a: {value: y}\n", []string{"the same header as"}},
		{"literal with a line break", remote + "      headers:\n        X-A: {value: \"a\\r\\nHost: b\"}\n", []string{"headers.X-A.value: not a valid header value"}},
		{"stdio upstream", "mcp:\n  upstreams:\n    - name: fs\n      command: x\n      headers:\n        X-A: {value: x}\n", []string{"mcp.upstreams[0]: headers and oauth are for a remote upstream"}},
		{"oauth with Authorization header", remote + "      headers:\n        authorization: {value_env: T}\n      oauth:\n        token_url: https://a.example/t\n        client_id: c\n        client_secret_env: S\n", []string{"headers.authorization: set by oauth"}},
		{"oauth without endpoint or issuer", remote + "      oauth:\n        client_id: c\n        client_secret_env: S\n", []string{"mcp.upstreams[0].oauth: want token_url, or issuer"}},
		{"oauth without client", remote + "      oauth:\n        token_url: https://a.example/t\n", []string{"oauth.client_id: required", "oauth: want exactly one of client_secret_env or client_secret_file"}},
		{"oauth token url", remote + "      oauth:\n        token_url: ftp://a/t\n        client_id: c\n        client_secret_env: S\n", []string{"oauth.token_url: want an http(s) URL"}},
		{"oauth token url with credentials", remote + "      oauth:\n        token_url: https://u:p@a/t\n        client_id: c\n        client_secret_env: S\n", []string{"oauth.token_url"}},
		{"oauth resource", remote + "      oauth:\n        token_url: https://a/t\n        client_id: c\n        client_secret_file: /s\n        resource: \"https://m/mcp#x\"\n", []string{"oauth.resource"}},
		{"oauth scope", remote + "      oauth:\n        token_url: https://a/t\n        client_id: c\n        client_secret_file: /s\n        scopes: [\"a b\"]\n", []string{"oauth.scopes[0]"}},
		{"oauth auth method", remote + "      oauth:\n        token_url: https://a/t\n        client_id: c\n        client_secret_file: /s\n        auth_method: tls_client_auth\n", []string{"oauth.auth_method"}},
		{"private_key_jwt without a key", remote + "      oauth:\n        token_url: https://a/t\n        client_id: c\n        client_secret_file: /s\n        auth_method: private_key_jwt\n", []string{"oauth: private_key_jwt wants private_key_file, and no client secret"}},
		{"private key without private_key_jwt", remote + "      oauth:\n        token_url: https://a/t\n        client_id: c\n        private_key_file: /k.pem\n", []string{"oauth.private_key_file: only with auth_method private_key_jwt"}},
		{"llm framing header", "llm:\n  upstreams:\n    chat_completions:\n      base_url: https://a/v1\n      headers: {Host: b}\n", []string{"llm.upstreams.chat_completions.headers.Host", "framing"}},
		{"llm env name", "llm:\n  upstreams:\n    chat_completions:\n      base_url: https://a/v1\n      headers_env: {api-key: \"\"}\n", []string{"llm.upstreams.chat_completions.headers_env.api-key: want the name of an environment variable"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("gw.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("the error repeats the secret: %v", err)
			}
		})
	}
}
