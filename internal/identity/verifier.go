package identity

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

// Credentials is the credential material of one request, as a transport found it.
type Credentials struct {
	// APIKey is a pcl_ key (from "Authorization: Bearer pcl_..." or "X-API-Key").
	APIKey string
	// BearerToken is a JWT (from "Authorization: Bearer ey...").
	BearerToken string
	// Request and Body, when Request carries Signature-Input, are verified as a signed request.
	// Body must be the exact bytes received.
	Request *http.Request
	Body    []byte
	// ClaimedAgent, when set, is the agent the request says it is acting as (for example an
	// agent_id in the body). It must equal the authenticated agent.
	ClaimedAgent string
	// Ambiguous is set when the request carried a credential header more than once (two
	// Authorization or two X-API-Key headers): Verify refuses it (ErrAmbiguous) instead of
	// choosing one, since a proxy in front may have checked the other.
	Ambiguous bool
}

// CredentialsFromRequest extracts credentials from an HTTP request and its (already read) body.
func CredentialsFromRequest(r *http.Request, body []byte) Credentials {
	var c Credentials
	c.Ambiguous = len(r.Header.Values("Authorization")) > 1 || len(r.Header.Values("X-API-Key")) > 1
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, val, _ := strings.Cut(auth, " ")
		if strings.EqualFold(scheme, "Bearer") {
			val = strings.TrimSpace(val)
			if strings.HasPrefix(val, APIKeyPrefix) {
				c.APIKey = val
			} else {
				c.BearerToken = val
			}
		} else {
			// An Authorization scheme we do not speak is still a credential: keep it, so that
			// Verify reports it as malformed instead of "missing".
			c.BearerToken = auth
		}
	}
	if k := r.Header.Get("X-API-Key"); k != "" {
		if c.APIKey != "" && c.APIKey != k {
			c.APIKey = "\x00ambiguous"
		} else {
			c.APIKey = k
		}
	}
	if r.Header.Get("Signature-Input") != "" || r.Header.Get("Signature") != "" {
		c.Request, c.Body = r, body
	}
	return c
}

// Options are a Verifier's dependencies.
type Options struct {
	Keys   KeyStore   // API keys; nil disables API-key authentication
	Nonces NonceStore // required when any agent has signing keys
	// HTTPClient fetches JWKS documents; a client with a 10s timeout if nil.
	HTTPClient *http.Client
	Now        func() time.Time
	Logger     *slog.Logger
}

// Verifier authenticates agents and users against one compiled configuration. It is immutable
// apart from the JWKS sets it refreshes; on a configuration reload build a new one and swap.
type Verifier struct {
	c           *compiled
	keys        KeyStore
	nonces      NonceStore
	now         func() time.Time
	issuers     map[string]*issuer
	userIssuers map[string]*issuer
}

// New compiles cfg. Call Start to begin refreshing JWKS key sets.
func New(cfg Config, opt Options) (*Verifier, error) {
	c, err := cfg.compile()
	if err != nil {
		return nil, fmt.Errorf("identity config:\n%w", err)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: fetchTimeout}
	}
	if len(c.sigKeys) > 0 && opt.Nonces == nil {
		return nil, fmt.Errorf("identity: agents have signing keys but no nonce store is configured")
	}
	v := &Verifier{c: c, keys: opt.Keys, nonces: opt.Nonces, now: opt.Now,
		issuers: map[string]*issuer{}, userIssuers: map[string]*issuer{}}
	for _, ic := range c.cfg.JWTIssuers {
		is, err := newIssuer(ic, opt.HTTPClient, opt.Now, opt.Logger)
		if err != nil {
			return nil, err
		}
		v.issuers[ic.Issuer] = is
	}
	for _, ic := range c.cfg.Users.Issuers {
		is, err := newIssuer(ic, opt.HTTPClient, opt.Now, opt.Logger)
		if err != nil {
			return nil, err
		}
		v.userIssuers[ic.Issuer] = is
	}
	return v, nil
}

// Start refreshes every JWKS in the background until ctx is cancelled: once at once, then every
// refresh_interval. It does not wait for the first fetch; a token that arrives before it triggers
// a (rate-limited) fetch of its own. The returned wait blocks, once ctx is cancelled, until every
// refresh has ended.
func (v *Verifier) Start(ctx context.Context) (wait func()) {
	return startRefresh(ctx, v.issuers, v.userIssuers)
}

// startRefresh runs the JWKS refresh of every remote issuer in ms; wait returns when all ended.
func startRefresh(ctx context.Context, ms ...map[string]*issuer) (wait func()) {
	var wg sync.WaitGroup
	for _, m := range ms {
		for _, is := range m {
			if is.remote != nil {
				wg.Go(func() { is.remote.run(ctx) })
			}
		}
	}
	return wg.Wait
}

// Agent returns the declared agent id, or false. The result has no Method: it is not authenticated.
func (v *Verifier) Agent(id string) (Agent, bool) {
	a, ok := v.c.agents[id]
	if !ok {
		return Agent{}, false
	}
	return *a, true
}

// Verify authenticates the agent behind creds. Exactly one kind of credential must be present.
func (v *Verifier) Verify(ctx context.Context, creds Credentials) (*Agent, error) {
	n := 0
	for _, present := range []bool{creds.APIKey != "", creds.BearerToken != "", creds.Request != nil} {
		if present {
			n++
		}
	}
	if creds.Ambiguous {
		return nil, ErrAmbiguous
	}
	switch n {
	case 0:
		return nil, ErrMissing
	case 1:
	default:
		return nil, ErrAmbiguous
	}
	var (
		agentID, credID string
		method          Method
		err             error
	)
	switch {
	case creds.APIKey != "":
		method = MethodAPIKey
		agentID, credID, err = v.verifyAPIKey(ctx, creds.APIKey)
	case creds.BearerToken != "":
		method = MethodJWT
		agentID, credID, err = v.verifyJWT(ctx, creds.BearerToken)
	default:
		method = MethodSignature
		agentID, credID, err = v.verifySignature(ctx, creds.Request, creds.Body)
	}
	if err != nil {
		return nil, err
	}
	proto, ok := v.c.agents[agentID]
	if !ok {
		return nil, fmt.Errorf("%s credential %s names agent %q: %w", method, credID, agentID, ErrUnknownAgent)
	}
	if creds.ClaimedAgent != "" && creds.ClaimedAgent != agentID {
		return nil, fmt.Errorf("credential of agent %q used as agent %q: %w", agentID, creds.ClaimedAgent, ErrAgentMismatch)
	}
	a := *proto
	a.Method, a.CredentialID = method, credID
	return &a, nil
}

func (v *Verifier) verifyAPIKey(ctx context.Context, key string) (agent, credID string, err error) {
	if v.keys == nil {
		return "", "", fmt.Errorf("api key: %w: API keys are not enabled", ErrInvalid)
	}
	rec, err := checkAPIKey(ctx, v.keys, key, v.now())
	if err != nil {
		return "", "", err
	}
	return rec.AgentID, "api_key:" + rec.ID, nil
}

func (v *Verifier) verifyJWT(ctx context.Context, token string) (agent, credID string, err error) {
	if strings.ContainsRune(token, ' ') {
		return "", "", fmt.Errorf("authorization: %w: unsupported scheme", ErrMalformed)
	}
	iss, err := unverifiedIssuer(token)
	if err != nil {
		return "", "", err
	}
	is, ok := v.issuers[iss]
	if !ok {
		return "", "", fmt.Errorf("jwt: %w: issuer %q is not trusted", ErrInvalid, iss)
	}
	claims, err := is.verify(ctx, token)
	if err != nil {
		return "", "", err
	}
	id, err := is.agentID(claims)
	if err != nil {
		return "", "", err
	}
	cred := "jwt:" + iss
	if jti, ok := claims["jti"].(string); ok && jti != "" && len(jti) <= 128 {
		cred += "#" + jti
	}
	return id, cred, nil
}

func (v *Verifier) verifySignature(ctx context.Context, r *http.Request, body []byte) (agent, credID string, err error) {
	sc := v.c.cfg.Signatures
	now := v.now()
	var owner string
	res, err := httpsig.Verify(r, body, httpsig.VerifyOptions{
		Required: sc.Components, Now: now, MaxAge: sc.MaxAge, MaxSkew: sc.MaxSkew, RequireNonce: true,
	}, func(keyID string) (ed25519.PublicKey, error) {
		k, ok := v.c.sigKeys[keyID]
		if !ok {
			return nil, fmt.Errorf("%w: %q", httpsig.ErrUnknownKey, keyID)
		}
		if !k.notAfter.IsZero() && !now.Before(k.notAfter) {
			return nil, fmt.Errorf("signing key %s retired at %s: %w", keyID, k.notAfter.Format(time.RFC3339), ErrExpired)
		}
		owner = k.agentID
		return k.pub, nil
	})
	if err != nil {
		return "", "", mapSigError(err)
	}
	if len(res.Nonce) > 256 {
		return "", "", fmt.Errorf("signature: %w: nonce longer than 256 bytes", ErrMalformed)
	}
	// Nonces are scoped to the key: one agent cannot burn another's nonces.
	fresh, err := v.nonces.Use(ctx, res.KeyID+"\x00"+res.Nonce, sc.MaxAge+sc.MaxSkew)
	if err != nil {
		return "", "", fmt.Errorf("signature: nonce store: %w: %w", ErrUnavailable, err)
	}
	if !fresh {
		return "", "", fmt.Errorf("signature %s: %w", res.KeyID, ErrReplay)
	}
	return owner, "signing_key:" + res.KeyID, nil
}

func mapSigError(err error) error {
	var e *Error
	switch {
	case asIdentity(err, &e):
		return err
	case isAny(err, httpsig.ErrNoSignature, httpsig.ErrMalformed, httpsig.ErrMissingParameter, httpsig.ErrAmbiguousLabel, httpsig.ErrLabelNotFound, httpsig.ErrUnsupportedAlg):
		return fmt.Errorf("signature: %w: %w", ErrMalformed, err)
	case isAny(err, httpsig.ErrMissingComponent):
		return fmt.Errorf("signature: %w: %w", ErrInvalid, err)
	case isAny(err, httpsig.ErrStale):
		return fmt.Errorf("signature: %w: %w", ErrStale, err)
	case isAny(err, httpsig.ErrExpired):
		return fmt.Errorf("signature: %w: %w", ErrExpired, err)
	}
	return fmt.Errorf("signature: %w: %w", ErrInvalid, err)
}

// noDowngrade follows at most three redirects, each only to an https URL without userinfo: a key
// set fetched over plain http could be anyone's. This holds also when the configured URL is a
// plain-http loopback one — a local key server must not send us to a remote plain-http host.
func noDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return fmt.Errorf("jwks: too many redirects")
	}
	if req.URL.Scheme != "https" {
		return fmt.Errorf("jwks: refusing redirect from %s to %s (key sets are only followed to https)", via[0].URL.Scheme, req.URL.Scheme)
	}
	if req.URL.User != nil {
		return fmt.Errorf("jwks: refusing redirect to a URL with userinfo")
	}
	return nil
}
