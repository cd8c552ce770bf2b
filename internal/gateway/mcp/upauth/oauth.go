package upauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// OAuth configures the client credentials grant (RFC 6749 §4.4) for one upstream.
type OAuth struct {
	// Path names the setting ("mcp.upstreams[0].oauth"), for errors.
	Path string
	// Endpoint is the upstream's MCP URL: the default resource indicator, and where discovery
	// starts.
	Endpoint string
	// TokenURL is the token endpoint; empty: discovered (Issuer required).
	TokenURL string
	// Issuer is the only authorization server a discovered token endpoint may belong to.
	Issuer   string
	ClientID string
	// Secret is the client secret; with AuthMethod private_key_jwt, the private key (PEM) that
	// signs the client's assertions (RFC 7523) instead.
	Secret Secret
	Scopes []string
	// Resource is the RFC 8707 resource indicator; empty: Endpoint.
	Resource string
	Audience string
	// AuthMethod: client_secret_basic (default), client_secret_post or private_key_jwt.
	AuthMethod string
	// HTTPClient sends token and discovery requests; nil: a client that follows no redirect.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// tokenTimeout bounds one token request (or one discovery) when no context says otherwise.
const tokenTimeout = 30 * time.Second

// renewMargin is how long before its expiry a token is replaced: a fifth of its lifetime, at
// most a minute, so that a request never leaves with a token about to expire on the way.
func renewMargin(lifetime time.Duration) time.Duration { return min(lifetime/5, time.Minute) }

// ClientCredentials is the go-sdk OAuthHandler of one upstream: the Streamable HTTP client
// transport asks it for the token of every request, and on a 401 or 403 calls Authorize, then
// sends the request once more. The token is cached and fetched again a margin before it
// expires; Authorize always fetches a new one (the upstream refused the one it had: revoked,
// rotated, or short of a scope the challenge names).
type ClientCredentials struct {
	cfg    OAuth
	secret *secret
	hc     *http.Client
	now    func() time.Time
	log    *slog.Logger

	mu       sync.Mutex
	tokenURL string // configured or discovered; "" until discovery
	issuer   string // the discovered issuer: a client assertion's audience
	style    oauth2.AuthStyle
	resource string
	scopes   []string
	tok      *oauth2.Token
	renewAt  time.Time // zero: the token has no known expiry
}

var _ auth.OAuthHandler = (*ClientCredentials)(nil)

// NewClientCredentials reads the client secret once (an unset variable or a missing file fails
// here) and, with a configured token URL, fetches nothing yet: the first request does.
func NewClientCredentials(c OAuth) (*ClientCredentials, error) {
	s, err := readSecret(&secret{src: c.Secret, pem: c.AuthMethod == methodPrivateKeyJWT})
	if err != nil {
		return nil, err
	}
	if s.pem {
		pemKey, _ := s.get()
		if _, _, err := signingKey(pemKey); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Secret.Path, err)
		}
	}
	h := &ClientCredentials{cfg: c, secret: s, hc: c.HTTPClient, now: c.Now, log: c.Logger,
		tokenURL: c.TokenURL, resource: c.Resource, scopes: slices.Clone(c.Scopes), style: authStyle(c.AuthMethod)}
	if h.hc == nil {
		h.hc = &http.Client{Timeout: tokenTimeout, CheckRedirect: noRedirect}
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.resource == "" {
		h.resource = c.Endpoint
	}
	return h, nil
}

// noRedirect: the client secret is sent to the token endpoint configured or discovered, never
// to wherever a redirect points.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func authStyle(method string) oauth2.AuthStyle {
	if method == "client_secret_post" || method == methodPrivateKeyJWT {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}

// TokenSource is the handler itself once the token endpoint is known; before discovery, nil:
// the first request goes without a token, and the upstream's 401 starts discovery.
func (h *ClientCredentials) TokenSource(context.Context) (oauth2.TokenSource, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tokenURL == "" {
		return nil, nil
	}
	return h, nil
}

// Token returns the cached token, or fetches one when there is none or it is due for renewal.
func (h *ClientCredentials) Token() (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
	defer cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tok != nil && (h.renewAt.IsZero() || h.now().Before(h.renewAt)) {
		return h.tok, nil
	}
	return h.fetch(ctx)
}

// Authorize answers a 401 or 403 from the upstream: discovery first if the token endpoint is
// not known yet, the scopes a challenge names added to those asked for, and a new token.
func (h *ClientCredentials) Authorize(ctx context.Context, req *http.Request, resp *http.Response) error {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	challenges, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	if err != nil {
		challenges = nil // an unreadable challenge still gets a new token
	}
	ctx, cancel := context.WithTimeout(ctx, tokenTimeout)
	defer cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tokenURL == "" {
		if err := h.discover(ctx, challenges); err != nil {
			return fmt.Errorf("%s: discovery: %w", h.cfg.Path, err)
		}
	}
	added := false
	for _, c := range challenges {
		if c.Scheme != "bearer" {
			continue
		}
		for _, s := range strings.Fields(c.Params["scope"]) {
			if !slices.Contains(h.scopes, s) {
				h.scopes, added = append(h.scopes, s), true
			}
		}
	}
	if resp.StatusCode == http.StatusForbidden && !added {
		// Forbidden with the scopes it names already asked for: a new token would be the same
		// token's twin, and an upstream that forbids every request would have the gateway ask
		// the authorization server once for each of them.
		return fmt.Errorf("%s: the upstream answered 403 Forbidden", h.cfg.Path)
	}
	h.log.Info("upstream refused its token: fetching a new one", slog.String("setting", h.cfg.Path), slog.Int("status", resp.StatusCode))
	h.tok = nil
	_, err = h.fetch(ctx)
	return err
}

// fetch runs the grant; called with h.mu held.
func (h *ClientCredentials) fetch(ctx context.Context) (*oauth2.Token, error) {
	secret, err := h.secret.get()
	if err != nil {
		return nil, err
	}
	params := url.Values{}
	if h.cfg.AuthMethod == methodPrivateKeyJWT {
		assertion, err := h.assertion(secret)
		if err != nil {
			return nil, err
		}
		params.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		params.Set("client_assertion", assertion)
		secret = ""
	}
	if h.resource != "" {
		params.Set("resource", h.resource)
	}
	if h.cfg.Audience != "" {
		params.Set("audience", h.cfg.Audience)
	}
	cc := clientcredentials.Config{ClientID: h.cfg.ClientID, ClientSecret: secret, TokenURL: h.tokenURL,
		Scopes: h.scopes, EndpointParams: params, AuthStyle: h.style}
	start := h.now()
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, h.hc))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			// The server's error code and description, never the response body as a whole.
			return nil, fmt.Errorf("%s: token request to %s refused: %d %s %s", h.cfg.Path, h.tokenURL, re.Response.StatusCode, re.ErrorCode, re.ErrorDescription)
		}
		return nil, fmt.Errorf("%s: token request to %s: %w", h.cfg.Path, h.tokenURL, err)
	}
	if strings.ToLower(tok.TokenType) != "bearer" && tok.TokenType != "" {
		return nil, fmt.Errorf("%s: token type %q from %s (want Bearer)", h.cfg.Path, tok.TokenType, h.tokenURL)
	}
	h.tok, h.renewAt = tok, time.Time{}
	if !tok.Expiry.IsZero() {
		h.renewAt = tok.Expiry.Add(-renewMargin(tok.Expiry.Sub(start)))
	}
	h.log.Info("upstream token fetched", slog.String("setting", h.cfg.Path), slog.Time("expires", tok.Expiry))
	return tok, nil
}

// discover finds the token endpoint of the configured issuer the way the MCP authorization
// specification has clients do: the protected-resource metadata (RFC 9728) the challenge names,
// or at its well-known locations, must list the issuer; the issuer's metadata (RFC 8414) gives
// the endpoint. Called with h.mu held.
func (h *ClientCredentials) discover(ctx context.Context, challenges []oauthex.Challenge) error {
	var prm *oauthex.ProtectedResourceMetadata
	var errs []error
	for _, u := range prmURLs(challenges, h.cfg.Endpoint) {
		m, err := oauthex.GetProtectedResourceMetadata(ctx, u.url, u.resource, h.hc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		prm = m
		break
	}
	if prm == nil {
		return fmt.Errorf("no protected-resource metadata: %w", errors.Join(errs...))
	}
	issuer := ""
	for _, as := range prm.AuthorizationServers {
		if sameIssuer(as, h.cfg.Issuer) {
			issuer = as
		}
	}
	if issuer == "" {
		return fmt.Errorf("the upstream names authorization servers %q, not the configured issuer %q", prm.AuthorizationServers, h.cfg.Issuer)
	}
	asm, err := h.serverMetadata(ctx, issuer)
	if err != nil {
		return err
	}
	if h.cfg.AuthMethod == "" && !slices.Contains(asm.TokenEndpointAuthMethodsSupported, "client_secret_basic") &&
		slices.Contains(asm.TokenEndpointAuthMethodsSupported, "client_secret_post") {
		h.style = oauth2.AuthStyleInParams
	}
	if h.cfg.Resource == "" && prm.Resource != "" {
		h.resource = prm.Resource
	}
	if len(h.cfg.Scopes) == 0 && len(h.scopes) == 0 {
		h.scopes = slices.Clone(prm.ScopesSupported)
	}
	h.tokenURL, h.issuer = asm.TokenEndpoint, asm.Issuer
	h.log.Info("upstream token endpoint discovered", slog.String("setting", h.cfg.Path), slog.String("token_url", h.tokenURL))
	return nil
}

func sameIssuer(a, b string) bool { return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/") }

type prmURL struct{ url, resource string }

// prmURLs are where the protected-resource metadata may be, in the specification's order: the
// URL the challenge names, then the path-inserted well-known URL, then the root one.
func prmURLs(challenges []oauthex.Challenge, endpoint string) []prmURL {
	var out []prmURL
	for _, c := range challenges {
		if u := c.Params["resource_metadata"]; u != "" {
			out = append(out, prmURL{u, endpoint})
			break
		}
	}
	ru, err := url.Parse(endpoint)
	if err != nil {
		return out
	}
	mu := *ru
	mu.RawQuery = ""
	mu.Path = "/.well-known/oauth-protected-resource/" + strings.TrimLeft(ru.Path, "/")
	if len(out) == 0 || out[0].url != mu.String() {
		out = append(out, prmURL{mu.String(), endpoint})
	}
	mu.Path = "/.well-known/oauth-protected-resource"
	root := *ru
	root.Path, root.RawQuery = "", ""
	return append(out, prmURL{mu.String(), root.String()})
}

// serverMetadata fetches issuer's metadata (RFC 8414, or OpenID Connect Discovery) at the
// well-known locations the MCP specification lists. Not the go-sdk's reader: it refuses a server
// that does not offer PKCE, which the authorization code grant needs and this grant does not.
func (h *ClientCredentials) serverMetadata(ctx context.Context, issuer string) (*oauthex.AuthServerMeta, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("issuer %q is not a URL", issuer)
	}
	path := strings.TrimSuffix(u.Path, "/")
	var urls []string
	for _, wk := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		m := *u
		m.Path = wk + path
		urls = append(urls, m.String())
	}
	if path != "" {
		m := *u
		m.Path = path + "/.well-known/openid-configuration"
		urls = append(urls, m.String())
	}
	var errs []error
	for _, mu := range urls {
		asm, err := getMetadata(ctx, h.hc, mu)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case !sameIssuer(asm.Issuer, issuer):
			return nil, fmt.Errorf("%s names issuer %q, not %q", mu, asm.Issuer, issuer)
		case asm.TokenEndpoint == "":
			return nil, fmt.Errorf("%s names no token_endpoint", mu)
		}
		te, err := url.Parse(asm.TokenEndpoint)
		if err != nil || !(te.Scheme == "https" || te.Scheme == "http" && loopback(te.Hostname())) {
			return nil, fmt.Errorf("%s: token_endpoint %q is neither https nor on this machine", mu, asm.TokenEndpoint)
		}
		return asm, nil
	}
	return nil, fmt.Errorf("no metadata for issuer %s: %w", issuer, errors.Join(errs...))
}

// maxMetadataBytes bounds a metadata document.
const maxMetadataBytes = 1 << 20

func getMetadata(ctx context.Context, hc *http.Client, u string) (*oauthex.AuthServerMeta, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	var asm oauthex.AuthServerMeta
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxMetadataBytes)).Decode(&asm); err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return &asm, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
