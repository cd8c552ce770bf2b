package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

const (
	maxTokenLen   = 16 << 10
	fetchTimeout  = 10 * time.Second
	jwksUserAgent = "portcullis-jwks"
)

// issuer verifies tokens of one configured issuer.
type issuer struct {
	cfg    IssuerConfig
	now    func() time.Time
	parser *jwt.Parser
	static []verificationKey
	remote *jwks // nil without jwks_url
}

func newIssuer(cfg IssuerConfig, client *http.Client, now func() time.Time, log *slog.Logger) (*issuer, error) {
	is := &issuer{cfg: cfg, now: now}
	is.parser = jwt.NewParser(
		jwt.WithValidMethods(cfg.Algorithms),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audiences...),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(now),
	)
	hmac := strings.HasPrefix(cfg.Algorithms[0], "HS")
	for _, f := range cfg.KeyFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("issuer %s: key file: %w", cfg.Issuer, err)
		}
		keys, err := parseKeyDocument(b, hmac)
		if err != nil {
			return nil, fmt.Errorf("issuer %s: key file %s: %w", cfg.Issuer, f, err)
		}
		is.static = append(is.static, keys...)
	}
	if cfg.JWKSURL != "" {
		// The redirect rule is the issuer's, not the caller's: a client supplied without one
		// would follow a key server's redirect to plain http.
		hc := *client
		hc.CheckRedirect = noDowngrade
		hc.Transport = limitedTransport{base: client.Transport}
		is.remote = &jwks{url: cfg.JWKSURL, client: &hc, every: cfg.RefreshInterval,
			minGap: cfg.MinRefreshInterval, now: now, log: log.With("issuer", cfg.Issuer)}
	}
	return is, nil
}

// keyfunc selects the verification keys for tok: only keys whose family fits the token's alg
// (and whose own alg, if the JWK names one, is that alg), by kid when the token names one.
func (is *issuer) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(tok *jwt.Token) (any, error) {
		// Before any key is looked for (or a JWKS refresh triggered): a token that demands an
		// extension we do not implement is refused.
		if err := checkCrit(tok.Header); err != nil {
			return nil, err
		}
		alg := tok.Method.Alg()
		kid, _ := tok.Header["kid"].(string)
		find := func() []jwt.VerificationKey {
			var out []jwt.VerificationKey
			pick := func(keys []verificationKey) {
				for _, k := range keys {
					// A key without a kid (a PEM file, a kid-less JWK) is a candidate for any kid.
					if kid != "" && k.kid != "" && k.kid != kid {
						continue
					}
					if k.family() != algFamily(alg) || (k.alg != "" && k.alg != alg) {
						continue
					}
					out = append(out, k.key)
				}
			}
			pick(is.static)
			if is.remote != nil {
				pick(is.remote.keys())
			}
			return out
		}
		keys := find()
		if len(keys) == 0 && is.remote != nil {
			// Unknown kid (or no keys yet): the issuer may have rotated. Refresh, rate-limited.
			if err := is.remote.refresh(ctx, true); err != nil && len(is.remote.keys()) == 0 {
				return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			keys = find()
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("no key for kid %q and alg %s", kid, alg)
		}
		return jwt.VerificationKeySet{Keys: keys}, nil
	}
}

// verify checks token and returns its claims.
func (is *issuer) verify(ctx context.Context, token string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := is.parser.ParseWithClaims(token, claims, is.keyfunc(ctx))
	if err != nil {
		return nil, mapJWTError(err)
	}
	if err := is.checkLifetime(claims); err != nil {
		return nil, err
	}
	return claims, nil
}

// checkCrit applies RFC 7515 §4.1.11: "crit" lists header extensions the verifier must understand
// or refuse the token. Portcullis implements no extension, so any crit is refused; one that is not
// a non-empty list of strings is malformed.
func checkCrit(h map[string]any) error {
	v, ok := h["crit"]
	if !ok {
		return nil
	}
	list, isList := v.([]any)
	if !isList || len(list) == 0 {
		return fmt.Errorf("jwt: %w: crit header must be a non-empty list of names", ErrMalformed)
	}
	names := make([]string, 0, len(list))
	for _, e := range list {
		s, isStr := e.(string)
		if !isStr || s == "" {
			return fmt.Errorf("jwt: %w: crit header must be a non-empty list of names", ErrMalformed)
		}
		names = append(names, s)
	}
	return fmt.Errorf("jwt: %w: crit header names extensions this verifier does not understand: %q", ErrInvalid, names)
}

// checkLifetime refuses a token valid for longer than the issuer's max_lifetime: exp - iat, and
// exp - now (which is what bounds a token without iat). The signature, exp, nbf and iat were
// checked already, so exp is present and iat, if any, is a number.
func (is *issuer) checkLifetime(claims jwt.MapClaims) error {
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return fmt.Errorf("jwt: %w: exp unreadable", ErrInvalid)
	}
	iat, err := claims.GetIssuedAt()
	if err != nil {
		return fmt.Errorf("jwt: %w: iat unreadable", ErrInvalid)
	}
	limit := is.cfg.MaxLifetime
	if iat != nil && exp.Sub(iat.Time) > limit {
		return fmt.Errorf("jwt: %w: exp - iat is %s, the maximum is %s", ErrLifetime, exp.Sub(iat.Time), limit)
	}
	if left := exp.Sub(is.now()); left > limit+is.cfg.Leeway {
		return fmt.Errorf("jwt: %w: expires in %s, the maximum lifetime is %s", ErrLifetime, left.Round(time.Second), limit)
	}
	return nil
}

func mapJWTError(err error) error {
	var e *Error
	switch {
	case errors.Is(err, ErrUnavailable):
		return err
	case asIdentity(err, &e):
		// Our own checks inside the keyfunc (crit) carry their code already.
		return err
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("jwt: %w: %v", ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return fmt.Errorf("jwt: %w: %v", ErrInvalid, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("jwt: %w", ErrExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("jwt: %w", ErrNotYetValid)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("jwt: %w", ErrWrongAudience)
	}
	return fmt.Errorf("jwt: %w: %v", ErrInvalid, err)
}

// unverifiedIssuer reads iss from a token without checking anything, to choose the issuer whose
// keys and rules will then check everything. Nothing else is read before verification.
func unverifiedIssuer(token string) (string, error) {
	if len(token) > maxTokenLen {
		return "", fmt.Errorf("jwt: %w: longer than %d bytes", ErrMalformed, maxTokenLen)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		return "", fmt.Errorf("jwt: %w: %v", ErrMalformed, err)
	}
	iss, err := claims.GetIssuer()
	if err != nil || iss == "" {
		return "", fmt.Errorf("jwt: %w: no issuer", ErrInvalid)
	}
	return iss, nil
}

// jwks is a remotely published key set, refreshed in the background and on unknown kids.
// A failed refresh never discards the last good set. Fetching and reading the set (the HTTP
// exchange, the JWK Set document, each JWK's key material) is github.com/MicahParks/jwkset's;
// what is kept of it — the keys this verifier accepts (keysFromSet), when to fetch again, and
// how often an unknown kid may cause a fetch — is decided here.
type jwks struct {
	url    string
	client *http.Client
	every  time.Duration
	minGap time.Duration
	now    func() time.Time
	log    *slog.Logger

	set atomic.Pointer[[]verificationKey]

	mu          sync.Mutex // serialises fetches
	lastAttempt time.Time
	lastErr     error
}

func (j *jwks) keys() []verificationKey {
	if p := j.set.Load(); p != nil {
		return *p
	}
	return nil
}

// refresh fetches the set. When limited, it does nothing if the last attempt was less than
// minGap ago (so a flood of tokens with made-up kids cannot make us hammer the issuer).
func (j *jwks) refresh(ctx context.Context, limited bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.now()
	if limited && !j.lastAttempt.IsZero() && now.Sub(j.lastAttempt) < j.minGap {
		return j.lastErr
	}
	j.lastAttempt = now
	keys, err := j.fetch(ctx)
	j.lastErr = err
	if err != nil {
		j.log.Warn("jwks refresh failed; keeping the last good key set", "url", j.url, "error", err.Error(), "keys", len(j.keys()))
		return err
	}
	j.set.Store(&keys)
	return nil
}

// fetch reads the set once: jwkset fetches and parses it into a storage of its own (one fetch,
// no refresh goroutine: RefreshInterval is zero), and keysFromSet keeps what this verifier
// accepts. The response is bounded by the client's transport (limitedTransport).
func (j *jwks) fetch(ctx context.Context) ([]verificationKey, error) {
	store := jwkset.NewMemoryStorage()
	_, err := jwkset.NewStorageFromHTTP(j.url, jwkset.HTTPClientStorageOptions{
		Client: j.client, Ctx: ctx, HTTPTimeout: fetchTimeout, Storage: store})
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", j.url, err)
	}
	all, err := store.KeyReadAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", j.url, err)
	}
	keys, err := keysFromSet(all)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", j.url, err)
	}
	return keys, nil
}

// keysFromSet keeps the keys of a fetched set that this verifier accepts for signatures, by the
// rules key files follow (parseJWK: use sig, no private material, RSA of 2048 bits or more, a
// supported curve, alg fitting kty, never a symmetric key from a URL). Keys it refuses are
// skipped; a set with no usable key is an error.
func keysFromSet(set []jwkset.JWK) ([]verificationKey, error) {
	var out []verificationKey
	var skipped []string
	for i, k := range set {
		raw, err := json.Marshal(k.Marshal())
		if err == nil {
			var vk verificationKey
			if vk, err = parseJWK(raw, false); err == nil {
				out = append(out, vk)
				continue
			}
		}
		skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("key set has no usable key (%s)", strings.Join(skipped, "; "))
	}
	return out, nil
}

// limitedTransport sends the set's request with the verifier's headers and bounds the response
// it reads: a key server that sends more than maxKeyDocSize bytes fails the fetch.
type limitedTransport struct{ base http.RoundTripper }

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	req.Header.Set("User-Agent", jwksUserAgent)
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: maxKeyDocSize}
	return resp, nil
}

// errKeyDocTooLarge fails a fetch whose response exceeds maxKeyDocSize.
var errKeyDocTooLarge = fmt.Errorf("key document larger than %d bytes", maxKeyDocSize)

// cappedBody reads at most left bytes, then fails.
type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errKeyDocTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return 0, errKeyDocTooLarge
	}
	return n, err
}

// run refreshes every j.every until ctx ends.
func (j *jwks) run(ctx context.Context) {
	_ = j.refresh(ctx, false)
	every(ctx, j.every, func() { _ = j.refresh(ctx, false) })
}

// claimStrings reads a claim that may be a string or a list of strings. A space-separated
// string is split when split is set (OAuth "scope" style).
func claimStrings(claims jwt.MapClaims, name string, split bool) ([]string, bool) {
	switch v := claims[name].(type) {
	case string:
		if split {
			return strings.Fields(v), true
		}
		return []string{v}, true
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	case nil:
		return nil, true
	}
	return nil, false
}

// agentFromClaims maps verified claims to an agent id.
func (is *issuer) agentID(claims jwt.MapClaims) (string, error) {
	id, ok := claims[is.cfg.AgentClaim].(string)
	if !ok || id == "" {
		return "", fmt.Errorf("jwt: %w: claim %q is missing or not a string", ErrInvalid, is.cfg.AgentClaim)
	}
	if len(is.cfg.Agents) > 0 && !slices.Contains(is.cfg.Agents, id) {
		return "", fmt.Errorf("jwt: issuer %s may not speak for agent %q: %w", is.cfg.Issuer, id, ErrAgentMismatch)
	}
	return id, nil
}
