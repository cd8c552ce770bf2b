// Package oidctest is a small OpenID Connect provider for tests, built from the specifications:
// discovery (OpenID Connect Discovery 1.0), a JWKS, an authorization endpoint that consents at
// once for the configured person, and a token endpoint that checks the client secret, the
// redirect URI, the one-use code and the PKCE verifier (RFC 7636, S256) before it signs an ID
// token (OpenID Connect Core 1.0 §2). Tests change the next ID token's claims, or its key, to
// forge one.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The client the provider knows.
const (
	ClientID     = "portcullis-console"
	ClientSecret = "s3cret"
)

// Provider is a running provider; its issuer is URL().
type Provider struct {
	srv *httptest.Server
	key *rsa.PrivateKey

	mu       sync.Mutex
	codes    map[string]authz
	claims   map[string]any                    // the person's claims besides iss, aud, exp, iat, nonce
	edit     func(c jwt.MapClaims, iss string) // changes the next ID tokens' claims
	signWith *rsa.PrivateKey                   // signs the next ID tokens instead of the published key
	verified int                               // token requests whose PKCE verifier matched
}

type authz struct {
	challenge, nonce, redirect string
}

// New starts a provider that signs in the person with subject sub; Close stops it.
func New(sub string) *Provider {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	p := &Provider{key: key, codes: map[string]authz{}, claims: map[string]any{"sub": sub}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"issuer": p.URL(), "authorization_endpoint": p.URL() + "/authorize",
			"token_endpoint": p.URL() + "/token", "jwks_uri": p.URL() + "/jwks",
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes())}}})
	})
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewServer(mux)
	return p
}

// URL is the issuer.
func (p *Provider) URL() string { return p.srv.URL }

// Close stops the provider.
func (p *Provider) Close() { p.srv.Close() }

// SetClaims sets the person's claims (sub among them) for the next sign-ins.
func (p *Provider) SetClaims(c map[string]any) {
	p.mu.Lock()
	p.claims = c
	p.mu.Unlock()
}

// Forge makes the next ID tokens edited by edit (nil: as issued) and signed by key (nil: the
// published key).
func (p *Provider) Forge(edit func(c jwt.MapClaims, iss string), key *rsa.PrivateKey) {
	p.mu.Lock()
	p.edit, p.signWith = edit, key
	p.mu.Unlock()
}

// Verified is the number of token requests whose PKCE verifier matched the code's challenge.
func (p *Provider) Verified() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.verified
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || q.Get("client_id") != ClientID || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || !strings.Contains(q.Get("scope"), "openid") || q.Get("nonce") == "" {
		http.Error(w, "bad authorization request: "+r.URL.RawQuery, http.StatusBadRequest)
		return
	}
	code := random()
	p.mu.Lock()
	p.codes[code] = authz{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri")}
	p.mu.Unlock()
	http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != ClientID || secret != ClientSecret {
		w.WriteHeader(http.StatusUnauthorized)
		writeJSON(w, map[string]string{"error": "invalid_client"})
		return
	}
	p.mu.Lock()
	a, ok := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code")) // one use
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	pkce := ok && base64.RawURLEncoding.EncodeToString(sum[:]) == a.challenge
	if pkce {
		p.verified++
	}
	edit, signer := p.edit, p.key
	if p.signWith != nil {
		signer = p.signWith
	}
	now := time.Now()
	claims := jwt.MapClaims{"iss": p.URL(), "aud": ClientID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "nonce": a.nonce}
	for k, v := range p.claims {
		claims[k] = v
	}
	p.mu.Unlock()
	if !pkce || r.PostForm.Get("grant_type") != "authorization_code" || r.PostForm.Get("redirect_uri") != a.redirect {
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, map[string]string{"error": "invalid_grant"})
		return
	}
	if edit != nil {
		edit(claims, p.URL())
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "k1"
	raw, err := tok.SignedString(signer)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, map[string]any{"access_token": "at-" + random(), "token_type": "Bearer", "expires_in": 300, "id_token": raw})
}
