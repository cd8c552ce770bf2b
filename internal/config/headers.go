package config

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// HeaderValue says where one header's value comes from: exactly one of ValueEnv, ValueFile or,
// for a header that carries no credential, Value.
type HeaderValue struct {
	// ValueEnv names the environment variable holding the value, read at start.
	ValueEnv string `yaml:"value_env"`
	// ValueFile is a file holding the value (surrounding white space trimmed), read at start and
	// again whenever it changes, so a rotated token is used from the next request on.
	ValueFile string `yaml:"value_file"`
	// Value is written in the configuration itself; refused for headers that carry credentials
	// (the file is read by whoever can read configuration, and shown in diffs and reviews).
	Value string `yaml:"value"`
	// Prefix goes before the value read, e.g. "Bearer " for a file holding a bare token.
	Prefix string `yaml:"prefix"`
}

// MCPOAuth is the OAuth 2.0 client credentials grant (RFC 6749 §4.4) for one remote upstream.
// The token is fetched before the first request, cached, and fetched again before it expires;
// an upstream answering 401 gets one new token and one retry of the request.
type MCPOAuth struct {
	// TokenURL is the authorization server's token endpoint. Empty: discovered from the
	// upstream's protected-resource metadata (RFC 9728) and its authorization server's metadata
	// (RFC 8414), the way the MCP authorization specification says; Issuer must then be set.
	TokenURL string `yaml:"token_url"`
	// Issuer is the authorization server the client secret may be sent to. With discovery it is
	// required: a discovered server with another issuer is refused, so that an upstream cannot
	// name a server of its choosing and collect the secret.
	Issuer string `yaml:"issuer"`
	// ClientID is the client's registered ID (not a secret).
	ClientID string `yaml:"client_id"`
	// ClientSecretEnv or ClientSecretFile holds the client secret (a file is re-read when it
	// changes).
	ClientSecretEnv  string `yaml:"client_secret_env"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// PrivateKeyFile holds the PEM private key (EC, RSA of 2048 bits or more, or Ed25519) that
	// signs the client's assertions with auth_method private_key_jwt (RFC 7523), in place of a
	// secret; re-read when it changes.
	PrivateKeyFile string `yaml:"private_key_file"`
	// Scopes requested; empty: none named (the server's default). A 403 naming more scopes in
	// its WWW-Authenticate challenge asks for them too.
	Scopes []string `yaml:"scopes"`
	// Resource is the RFC 8707 resource indicator sent with every token request; default the
	// upstream's URL (the MCP authorization specification requires it).
	Resource string `yaml:"resource"`
	// Audience is sent as the audience parameter, for servers that want one (Auth0 and others).
	Audience string `yaml:"audience"`
	// AuthMethod is how the client authenticates to the token endpoint: client_secret_basic
	// (the default: RFC 6749's), client_secret_post, or private_key_jwt (a signed assertion).
	AuthMethod string `yaml:"auth_method"`
}

// reservedHeaders are headers no configuration may set on a request the gateway sends: the
// connection's framing and hop-by-hop headers (set by the HTTP client, a second value would be
// request smuggling or a broken request), and the headers the MCP transport manages itself.
var reservedHeaders = map[string]string{
	"Host": "framing", "Content-Length": "framing", "Content-Type": "framing", "Content-Encoding": "framing",
	"Transfer-Encoding": "framing", "Trailer": "framing", "Expect": "framing",
	"Connection": "hop-by-hop", "Keep-Alive": "hop-by-hop", "Proxy-Connection": "hop-by-hop", "Te": "hop-by-hop",
	"Upgrade": "hop-by-hop", "Proxy-Authenticate": "hop-by-hop",
	"Accept": "MCP transport", "Mcp-Session-Id": "MCP transport", "Mcp-Protocol-Version": "MCP transport",
	"Last-Event-Id": "MCP transport", "Mcp-Method": "MCP transport", "Mcp-Name": "MCP transport",
}

// checkHeaderName adds a problem when name cannot be a configured request header: not a valid
// header name, or one of reservedHeaders, or one of the gateway's own (X-Portcullis-*).
func checkHeaderName(path, name string, add func(path, format string, args ...any)) {
	canon := http.CanonicalHeaderKey(name)
	switch {
	case !httpguts.ValidHeaderFieldName(name):
		add(path, "%q is not a valid header name", name)
	case reservedHeaders[canon] != "":
		add(path, "%s is a %s header, set by the gateway's HTTP client; it cannot be configured", canon, reservedHeaders[canon])
	case strings.HasPrefix(canon, "X-Portcullis-"):
		add(path, "X-Portcullis-* headers are the gateway's own")
	}
}

// credentialHeader reports whether a header named name carries a credential, by its name:
// such a header's value may not be written into the configuration.
func credentialHeader(name string) bool {
	switch n := strings.ToLower(name); n {
	case "authorization", "proxy-authorization", "cookie":
		return true
	default:
		for _, w := range []string{"key", "token", "secret", "auth", "password", "passwd", "session", "credential", "signature"} {
			if strings.Contains(n, w) {
				return true
			}
		}
	}
	return false
}

// validateCredentials checks a remote upstream's headers and OAuth settings.
func (u MCPUpstream) validateCredentials(path string, add func(path, format string, args ...any)) {
	if (len(u.Headers) > 0 || u.OAuth != nil) && u.URL == "" {
		add(path, "headers and oauth are for a remote upstream (url); a stdio child gets env")
		return
	}
	seen := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(u.Headers)) {
		v, p := u.Headers[name], path+".headers."+name
		checkHeaderName(p, name, add)
		if other, dup := seen[http.CanonicalHeaderKey(name)]; dup {
			add(p, "the same header as %q (header names are case-insensitive)", other)
		}
		seen[http.CanonicalHeaderKey(name)] = name
		n := 0
		for _, s := range []string{v.ValueEnv, v.ValueFile, v.Value} {
			if s != "" {
				n++
			}
		}
		switch {
		case n != 1:
			add(p, "want exactly one of value_env, value_file or value")
		case v.ValueEnv != "" && !envName.MatchString(v.ValueEnv):
			add(p+".value_env", "want the name of an environment variable, got %q", v.ValueEnv)
		case v.Value != "" && credentialHeader(name):
			// The value itself is never repeated in the message.
			add(p+".value", "%s carries a credential: take it from value_env or value_file, not the configuration file", name)
		case v.Value != "" && !httpguts.ValidHeaderFieldValue(v.Value):
			add(p+".value", "not a valid header value (control characters)")
		}
		if v.Prefix != "" && !httpguts.ValidHeaderFieldValue(v.Prefix) {
			add(p+".prefix", "not a valid header value (control characters)")
		}
	}
	o := u.OAuth
	if o == nil {
		return
	}
	p := path + ".oauth"
	for name := range u.Headers {
		if http.CanonicalHeaderKey(name) == "Authorization" {
			add(path+".headers."+name, "set by oauth: remove one of the two")
		}
	}
	urlOK := func(key, v string) {
		if v == "" {
			return
		}
		if pu, err := url.Parse(v); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" || pu.User != nil {
			add(p+"."+key, "want an http(s) URL without credentials, got %q", v)
		}
	}
	urlOK("token_url", o.TokenURL)
	urlOK("issuer", o.Issuer)
	if o.TokenURL == "" && o.Issuer == "" {
		add(p, "want token_url, or issuer to discover the token endpoint from (a discovered endpoint of any issuer could collect the client secret)")
	}
	if o.Resource != "" {
		if pu, err := url.Parse(o.Resource); err != nil || !pu.IsAbs() || pu.Fragment != "" {
			add(p+".resource", "want an absolute URI without a fragment (RFC 8707), got %q", o.Resource)
		}
	}
	if o.ClientID == "" {
		add(p+".client_id", "required")
	}
	switch {
	case o.AuthMethod == "private_key_jwt":
		if o.PrivateKeyFile == "" || o.ClientSecretEnv != "" || o.ClientSecretFile != "" {
			add(p, "private_key_jwt wants private_key_file, and no client secret")
		}
	case o.PrivateKeyFile != "":
		add(p+".private_key_file", "only with auth_method private_key_jwt")
	case (o.ClientSecretEnv == "") == (o.ClientSecretFile == ""):
		add(p, "want exactly one of client_secret_env or client_secret_file")
	case o.ClientSecretEnv != "" && !envName.MatchString(o.ClientSecretEnv):
		add(p+".client_secret_env", "want the name of an environment variable, got %q", o.ClientSecretEnv)
	}
	for i, s := range o.Scopes {
		if s == "" || strings.ContainsAny(s, " \"\\") || !httpguts.ValidHeaderFieldValue(s) {
			add(fmt.Sprintf("%s.scopes[%d]", p, i), "want a scope token (no spaces, quotes or backslashes), got %q", s)
		}
	}
	switch o.AuthMethod {
	case "", "client_secret_basic", "client_secret_post", "private_key_jwt":
	default:
		add(p+".auth_method", "want client_secret_basic, client_secret_post or private_key_jwt, got %q", o.AuthMethod)
	}
}
