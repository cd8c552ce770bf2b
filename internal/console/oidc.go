package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCOptions configure sign-in through an OpenID Connect provider: the authorization code flow
// with PKCE (RFC 7636, S256), state and nonce.
type OIDCOptions struct {
	Issuer       string
	Name         string // on the sign-in button; default the issuer's host
	ClientID     string
	ClientSecret string // "": a public client, protected by PKCE alone
	RedirectURL  string // the console's /oidc/callback as the provider sees it
	Scopes       []string
	// SubjectClaim names the person: "sub" (default) or "email", which is refused unless the
	// token says email_verified: true.
	SubjectClaim string
	// RoleClaim and Roles map the token's claim values to a role; the strongest role matched
	// wins. Empty Roles: the role is decided by Auth alone.
	RoleClaim string
	Roles     map[Role][]string
	// RefusedAudiences are the audiences the decision path accepts from this issuer: an ID token
	// that names one is refused, whatever else it names.
	RefusedAudiences func() []string
	Auth             OIDCAuthenticator
	// HTTPClient talks to the provider (default: a client with a 10-second timeout).
	HTTPClient *http.Client
}

// OIDCAuthenticator turns a verified OIDC identity into a person, or refuses it. It is asked at
// sign-in and again on every request of the session.
type OIDCAuthenticator interface {
	ConsoleOIDCPrincipal(ctx context.Context, id OIDCIdentity) (Principal, error)
}

// OIDCIdentity is who an ID token proved a person to be.
type OIDCIdentity struct {
	Issuer  string
	Subject string
	// Role is what RoleClaim mapped to at sign-in; "" when Roles is empty or nothing matched.
	Role Role
}

// oidcStateTTL bounds the round trip through the provider.
const oidcStateTTL = 10 * time.Minute

// oidcCookie carries state, nonce and PKCE verifier across the round trip, signed.
const oidcCookie = "portcullis_console_oidc"

type oidcClient struct {
	o   OIDCOptions
	key []byte // signs the state cookie; per process, so a restart voids sign-ins in flight

	mu       sync.Mutex
	provider *oidc.Provider
}

func newOIDCClient(o OIDCOptions) (*oidcClient, error) {
	if o.Issuer == "" || o.ClientID == "" || o.RedirectURL == "" || o.Auth == nil {
		return nil, errors.New("console: oidc needs an issuer, a client ID, a redirect URL and an authenticator")
	}
	if o.SubjectClaim == "" {
		o.SubjectClaim = "sub"
	}
	if len(o.Scopes) == 0 {
		o.Scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &oidcClient{o: o, key: key}, nil
}

// discover reads the provider's discovery document the first time it is needed (and again after
// a failure), so that a provider down at start-up does not stop the gateway.
func (oc *oidcClient) discover(ctx context.Context) (*oidc.Provider, error) {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if oc.provider != nil {
		return oc.provider, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, oc.o.HTTPClient), oc.o.Issuer)
	if err != nil {
		return nil, err
	}
	oc.provider = p
	return p, nil
}

func (oc *oidcClient) config(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: oc.o.ClientID, ClientSecret: oc.o.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: oc.o.RedirectURL, Scopes: oc.o.Scopes}
}

// flight is what the state cookie holds.
type flight struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Expires  int64  `json:"e"`
}

func (oc *oidcClient) sign(b []byte) []byte {
	m := hmac.New(sha256.New, oc.key)
	m.Write(b)
	return m.Sum(nil)
}

func (oc *oidcClient) seal(f flight) string {
	b, _ := json.Marshal(f)
	return base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(oc.sign(b))
}

// open returns the flight the cookie carries if its signature holds and it has not expired.
func (oc *oidcClient) open(v string, now time.Time) (flight, bool) {
	body, mac, ok := strings.Cut(v, ".")
	if !ok || len(v) > 1024 {
		return flight{}, false
	}
	b, err1 := base64.RawURLEncoding.DecodeString(body)
	m, err2 := base64.RawURLEncoding.DecodeString(mac)
	if err1 != nil || err2 != nil || !hmac.Equal(m, oc.sign(b)) {
		return flight{}, false
	}
	var f flight
	if json.Unmarshal(b, &f) != nil || now.Unix() >= f.Expires || f.State == "" || f.Nonce == "" || f.Verifier == "" {
		return flight{}, false
	}
	return f, true
}

// flightCookie is SameSite=Lax, unlike the session's: the provider sends the browser back with
// a cross-site top-level GET, on which a Strict cookie would not come along. It holds no
// authority — only what binds the callback to the browser that started the sign-in.
func (c *Console) flightCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: oidcCookie, Value: value, Path: c.o.Path + "/oidc/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteLaxMode, MaxAge: maxAge}
}

// oidcStart sends the browser to the provider with a fresh state, nonce and PKCE challenge.
func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) {
	p, err := c.oidc.discover(r.Context())
	if err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelError, "console: oidc discovery", slog.Any("error", err))
		c.loginFail(w, r, http.StatusBadGateway, "The identity provider cannot be reached right now.")
		return
	}
	f := flight{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), Expires: c.o.Now().Add(oidcStateTTL).Unix()}
	http.SetCookie(w, c.flightCookie(r, c.oidc.seal(f), int(oidcStateTTL.Seconds())))
	http.Redirect(w, r, c.oidc.config(p).AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)), http.StatusSeeOther)
}

// oidcCallback finishes the sign-in: the state matches the browser's cookie, the code is
// exchanged with the PKCE verifier, the ID token's signature, issuer, audience, expiry and
// nonce are verified, and the person it names is asked of Auth.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, c.flightCookie(r, "", -1)) // one use, whatever happens
	id, err := c.oidcIdentity(r)
	if err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelWarn, "console oidc sign-in refused", slog.Any("error", err))
		msg := "The sign-in could not be completed. Try again."
		var pe publicError
		if errors.As(err, &pe) {
			msg = string(pe)
		}
		c.loginFail(w, r, http.StatusUnauthorized, msg)
		return
	}
	p, err := c.oidc.o.Auth.ConsoleOIDCPrincipal(r.Context(), id)
	if err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelWarn, "console oidc sign-in refused", slog.String("subject", id.Subject), slog.Any("error", err))
		c.loginFail(w, r, http.StatusUnauthorized, "Your account does not sign anyone in to the console.")
		return
	}
	if !c.signIn(w, r, p, "", nil, &id) {
		return
	}
	c.log.LogAttrs(r.Context(), slog.LevelInfo, "console sign-in", slog.String("principal", p.Approver.ID), slog.String("role", string(p.Role)), slog.String("via", "oidc"))
	// Not a redirect: this request came through the provider's cross-site redirect, and a
	// browser that reads SameSite with the redirect chain would not send the Strict session
	// cookie on a redirect from here. A page of the console's own that moves on is same-site.
	next := c.o.Path + "/approvals"
	c.render(w, r, http.StatusOK, "signedin", view{Title: "Signed in", Refresh: next, Data: next})
}

// publicError is a refusal whose text the person may read.
type publicError string

func (e publicError) Error() string { return string(e) }

func (c *Console) oidcIdentity(r *http.Request) (OIDCIdentity, error) {
	ctx := r.Context()
	oc := c.oidc
	q := r.URL.Query()
	cookies := r.CookiesNamed(oidcCookie)
	if len(cookies) != 1 {
		return OIDCIdentity{}, publicError("The sign-in did not start in this browser, or took too long. Try again.")
	}
	f, ok := oc.open(cookies[0].Value, c.o.Now())
	if !ok {
		return OIDCIdentity{}, publicError("The sign-in did not start in this browser, or took too long. Try again.")
	}
	if e := q.Get("error"); e != "" {
		return OIDCIdentity{}, publicError("The identity provider refused the sign-in: " + bounded(e))
	}
	if !hmac.Equal([]byte(q.Get("state")), []byte(f.State)) {
		return OIDCIdentity{}, errors.New("state does not match the browser's")
	}
	code := q.Get("code")
	if code == "" {
		return OIDCIdentity{}, errors.New("no authorization code")
	}
	p, err := oc.discover(ctx)
	if err != nil {
		return OIDCIdentity{}, fmt.Errorf("discovery: %w", err)
	}
	cctx := oidc.ClientContext(ctx, oc.o.HTTPClient)
	tok, err := oc.config(p).Exchange(cctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return OIDCIdentity{}, fmt.Errorf("code exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return OIDCIdentity{}, errors.New("the token response holds no id_token")
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: oc.o.ClientID, Now: c.o.Now}).Verify(cctx, raw)
	if err != nil {
		return OIDCIdentity{}, fmt.Errorf("id token: %w", err)
	}
	if !hmac.Equal([]byte(idt.Nonce), []byte(f.Nonce)) {
		return OIDCIdentity{}, errors.New("id token: nonce does not match the sign-in's")
	}
	var claims struct {
		AZP           string `json:"azp"`
		Email         string `json:"email"`
		EmailVerified *bool  `json:"email_verified"`
	}
	var all map[string]any
	if err := idt.Claims(&claims); err != nil {
		return OIDCIdentity{}, fmt.Errorf("id token claims: %w", err)
	}
	if err := idt.Claims(&all); err != nil {
		return OIDCIdentity{}, fmt.Errorf("id token claims: %w", err)
	}
	// A token for several audiences must have been issued to the console (OpenID Connect Core
	// 3.1.3.7), and none of them may be one the decision path accepts.
	if len(idt.Audience) > 1 && claims.AZP != oc.o.ClientID {
		return OIDCIdentity{}, fmt.Errorf("id token: %d audiences, authorized party %q", len(idt.Audience), claims.AZP)
	}
	if oc.o.RefusedAudiences != nil {
		refused := oc.o.RefusedAudiences()
		for _, a := range idt.Audience {
			if slices.Contains(refused, a) {
				return OIDCIdentity{}, fmt.Errorf("id token: audience %q is the decision path's", a)
			}
		}
	}
	id := OIDCIdentity{Issuer: idt.Issuer, Subject: idt.Subject}
	if oc.o.SubjectClaim == "email" {
		if claims.Email == "" || claims.EmailVerified == nil || !*claims.EmailVerified {
			return OIDCIdentity{}, publicError("Your identity provider has not verified your email address, which names you here.")
		}
		id.Subject = claims.Email
	}
	if id.Subject == "" {
		return OIDCIdentity{}, errors.New("id token: no subject")
	}
	id.Role = oc.mapRole(all[oc.o.RoleClaim])
	return id, nil
}

// mapRole is the strongest role whose values the claim holds (a string or a list of strings).
func (oc *oidcClient) mapRole(claim any) Role {
	if oc.o.RoleClaim == "" || len(oc.o.Roles) == 0 {
		return ""
	}
	var values []string
	switch v := claim.(type) {
	case string:
		values = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				values = append(values, s)
			}
		}
	}
	for _, role := range []Role{RoleAdmin, RoleAuditor, RoleApprover} {
		for _, want := range oc.o.Roles[role] {
			if slices.Contains(values, want) {
				return role
			}
		}
	}
	return ""
}

// label names the provider on the sign-in page: its configured name, else the issuer's host.
func (oc *oidcClient) label() string {
	if oc.o.Name != "" {
		return oc.o.Name
	}
	if u, err := url.Parse(oc.o.Issuer); err == nil && u.Host != "" {
		return u.Host
	}
	return oc.o.Issuer
}
