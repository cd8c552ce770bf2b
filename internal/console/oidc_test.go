package console

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/console/oidctest"
)

func newProvider(t *testing.T) *oidctest.Provider {
	p := oidctest.New("alice-sub")
	t.Cleanup(p.Close)
	return p
}

// fakeOIDCAuth signs in the subjects it declares (by subject, in fakeAuth's map), and anyone a
// role was mapped for.
type fakeOIDCAuth struct{ fakeAuth }

func (f *fakeOIDCAuth) ConsoleOIDCPrincipal(ctx context.Context, id OIDCIdentity) (Principal, error) {
	p, err := f.ConsolePrincipal(ctx, id.Subject)
	if err != nil && id.Role != "" {
		return human(approval.QualifiedID(id.Issuer, id.Subject), string(id.Role)), nil
	}
	return p, err
}

// oidcRig is a console whose OIDC client signs in at p; "portcullis-agents" is an audience the
// decision path accepts from p.
func oidcRig(t *testing.T, p *oidctest.Provider, subjectClaim string) (*rig, *fakeOIDCAuth) {
	auth := &fakeOIDCAuth{fakeAuth{m: map[string]Principal{"alice-sub": human("idp#alice-sub", "approver", all)}}}
	r := newRigWith(t, false, func(o *Options, base string) {
		o.OIDC = &OIDCOptions{Issuer: p.URL(), ClientID: oidctest.ClientID, ClientSecret: oidctest.ClientSecret, RedirectURL: base + "/console/oidc/callback",
			SubjectClaim: subjectClaim, RoleClaim: "groups", Roles: map[Role][]string{RoleAuditor: {"audit"}, RoleAdmin: {"secops"}},
			RefusedAudiences: func() []string { return []string{"portcullis-agents"} }, Auth: auth}
	})
	return r, auth
}

// oidcSignIn runs the whole round trip in browser c: start, the provider's consent, the
// callback. It returns the callback's status and page.
func (r *rig) oidcSignIn(c *http.Client, tamper func(callback *url.URL)) (int, string) {
	r.t.Helper()
	resp, err := c.Get(r.srv.URL + "/console/oidc/start")
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		r.t.Fatalf("start: %d", resp.StatusCode)
	}
	resp, err = c.Get(resp.Header.Get("Location")) // the provider
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		r.t.Fatalf("authorize: %d", resp.StatusCode)
	}
	cb, _ := url.Parse(resp.Header.Get("Location"))
	if tamper != nil {
		tamper(cb)
	}
	code, body, _ := r.get(c, strings.TrimPrefix(cb.String(), r.srv.URL))
	return code, body
}

func TestOIDCSignIn(t *testing.T) {
	p := newProvider(t)
	r, auth := oidcRig(t, p, "")
	_, login, _ := r.get(r.client(), "/console/login")
	if !strings.Contains(login, `id="oidc-start"`) {
		t.Fatalf("the sign-in page offers no OIDC sign-in:\n%s", login)
	}
	c := r.client()
	// The callback moves on with a page of the console's own, not a redirect (a redirect would
	// still be part of the provider's cross-site chain).
	if code, body := r.oidcSignIn(c, nil); code != http.StatusOK || !strings.Contains(body, `<meta http-equiv="refresh" content="0;url=/console/approvals">`) {
		t.Fatalf("sign-in: %d\n%s", code, body)
	}
	code, body, _ := r.get(c, "/console/approvals")
	if code != http.StatusOK || !strings.Contains(body, `id="principal">idp#alice-sub<`) {
		t.Fatalf("after sign-in: %d\n%s", code, body)
	}
	if n := p.Verified(); n != 1 {
		t.Fatalf("the provider verified %d PKCE verifiers, want 1", n)
	}
	// The session is checked again on every request: removed from the declarations, signed out.
	auth.revoke("alice-sub")
	if code, _, h := r.get(c, "/console/approvals"); code != http.StatusSeeOther || h.Get("Location") != "/console/login" {
		t.Fatalf("after removal: %d %s", code, h.Get("Location"))
	}

	// A role mapped from the token's groups claim signs in someone not declared.
	p.SetClaims(map[string]any{"sub": "erin", "groups": []string{"staff", "audit"}})
	c = r.client()
	if code, _ := r.oidcSignIn(c, nil); code != http.StatusOK {
		t.Fatalf("mapped sign-in: %d", code)
	}
	if _, body, _ := r.get(c, "/console/approvals"); !strings.Contains(body, `<span class="role">auditor</span>`) {
		t.Fatalf("erin is not an auditor:\n%s", body)
	}
	// Neither declared nor mapped: nobody.
	p.SetClaims(map[string]any{"sub": "mallory", "groups": "staff"})
	if code, body := r.oidcSignIn(r.client(), nil); code != http.StatusUnauthorized || !strings.Contains(body, "does not sign anyone in") {
		t.Fatalf("undeclared person: %d\n%s", code, body)
	}
}

// Every forged, stale, misdirected or replayed sign-in is refused, and none opens a session.
func TestOIDCRefusesForgedTokensAndFlows(t *testing.T) {
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		edit     func(c jwt.MapClaims, iss string)
		signWith *rsa.PrivateKey
		tamper   func(cb *url.URL)
	}{
		{name: "signed by another key", signWith: other},
		{name: "expired", edit: func(c jwt.MapClaims, _ string) { c["exp"] = time.Now().Add(-time.Minute).Unix() }},
		{name: "wrong audience", edit: func(c jwt.MapClaims, _ string) { c["aud"] = "someone-else" }},
		{name: "wrong issuer", edit: func(c jwt.MapClaims, iss string) { c["iss"] = iss + "/other" }},
		{name: "wrong nonce", edit: func(c jwt.MapClaims, _ string) { c["nonce"] = "replayed-nonce" }},
		{name: "no nonce", edit: func(c jwt.MapClaims, _ string) { delete(c, "nonce") }},
		// A token the decision path would accept as an agent's, even one issued to the console.
		{name: "decision-path audience", edit: func(c jwt.MapClaims, _ string) {
			c["aud"], c["azp"] = []string{oidctest.ClientID, "portcullis-agents"}, oidctest.ClientID
		}},
		{name: "two audiences, issued to another client", edit: func(c jwt.MapClaims, _ string) {
			c["aud"], c["azp"] = []string{oidctest.ClientID, "dashboard"}, "dashboard"
		}},
		{name: "state changed", tamper: func(cb *url.URL) {
			q := cb.Query()
			q.Set("state", "attacker-state")
			cb.RawQuery = q.Encode()
		}},
		{name: "code changed", tamper: func(cb *url.URL) {
			q := cb.Query()
			q.Set("code", "attacker-code")
			cb.RawQuery = q.Encode()
		}},
		{name: "provider error", tamper: func(cb *url.URL) {
			cb.RawQuery = url.Values{"error": {"access_denied"}, "state": {cb.Query().Get("state")}}.Encode()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t)
			r, _ := oidcRig(t, p, "")
			p.Forge(tc.edit, tc.signWith)
			c := r.client()
			code, body := r.oidcSignIn(c, tc.tamper)
			if code != http.StatusUnauthorized || !strings.Contains(body, `id="flash"`) {
				t.Fatalf("callback: %d\n%s", code, body)
			}
			if code, _, _ := r.get(c, "/console/approvals"); code != http.StatusSeeOther {
				t.Fatalf("a refused sign-in opened a session: %d", code)
			}
		})
	}
}

// The callback is bound to the browser that started the sign-in, once.
func TestOIDCCallbackBoundToItsBrowser(t *testing.T) {
	p := newProvider(t)
	r, _ := oidcRig(t, p, "")
	var callback *url.URL
	c := r.client()
	// The victim's browser (c) starts a sign-in; the callback URL is carried to another browser.
	if code, _ := r.oidcSignIn(c, func(cb *url.URL) { cp := *cb; callback = &cp; cb.RawQuery = "" }); code != http.StatusUnauthorized {
		t.Fatalf("callback without code: %d", code)
	}
	if code, _, _ := r.get(r.client(), strings.TrimPrefix(callback.String(), r.srv.URL)); code != http.StatusUnauthorized {
		t.Fatalf("the callback in a browser that did not start the sign-in: %d", code)
	}
	// A forged state cookie: its signature does not hold.
	forged := r.client()
	u, _ := url.Parse(r.srv.URL + "/console/oidc/")
	f, _ := json.Marshal(flight{State: callback.Query().Get("state"), Nonce: "n", Verifier: "v", Expires: time.Now().Add(time.Hour).Unix()})
	forged.Jar.SetCookies(u, []*http.Cookie{{Name: oidcCookie, Value: base64.RawURLEncoding.EncodeToString(f) + ".AAAA", Path: "/console/oidc/"}})
	if code, _, _ := r.get(forged, strings.TrimPrefix(callback.String(), r.srv.URL)); code != http.StatusUnauthorized {
		t.Fatalf("a forged state cookie: %d", code)
	}
	// A good sign-in's callback replayed in the same browser: the state cookie was used up.
	c = r.client()
	var good *url.URL
	if code, _ := r.oidcSignIn(c, func(cb *url.URL) { good = cb }); code != http.StatusOK {
		t.Fatalf("sign-in: %d", code)
	}
	if code, _, _ := r.get(c, strings.TrimPrefix(good.String(), r.srv.URL)); code != http.StatusUnauthorized {
		t.Fatalf("a replayed callback: %d", code)
	}
}

// With the email as the subject, an email the provider has not verified signs no one in.
func TestOIDCEmailSubjectMustBeVerified(t *testing.T) {
	p := newProvider(t)
	r, auth := oidcRig(t, p, "email")
	auth.m["alice@example.com"] = human("idp#alice@example.com", "approver", all)
	for _, tc := range []struct {
		claims map[string]any
		want   int
	}{
		{map[string]any{"sub": "1", "email": "alice@example.com"}, http.StatusUnauthorized},
		{map[string]any{"sub": "1", "email": "alice@example.com", "email_verified": false}, http.StatusUnauthorized},
		{map[string]any{"sub": "1", "email": "alice@example.com", "email_verified": "true"}, http.StatusUnauthorized},
		{map[string]any{"sub": "1", "email": "alice@example.com", "email_verified": true}, http.StatusOK},
	} {
		p.SetClaims(tc.claims)
		if code, body := r.oidcSignIn(r.client(), nil); code != tc.want {
			t.Errorf("%v: %d, want %d\n%s", tc.claims, code, tc.want, body)
		}
	}
}

// The state cookie opens only as it was sealed, by this console, before it expired, and whole.
func TestOIDCFlightCookie(t *testing.T) {
	oc, err := newOIDCClient(OIDCOptions{Issuer: "https://idp.example.com", ClientID: "c", RedirectURL: "https://gw/console/oidc/callback", Auth: &fakeOIDCAuth{}})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newOIDCClient(oc.o)
	now := time.Now()
	good := flight{State: "s", Nonce: "n", Verifier: "v", Expires: now.Add(time.Minute).Unix()}
	if f, ok := oc.open(oc.seal(good), now); !ok || f != good {
		t.Fatalf("a sealed flight does not open: %+v %v", f, ok)
	}
	sealed := oc.seal(good)
	body, mac, _ := strings.Cut(sealed, ".")
	for name, v := range map[string]string{
		"another console's":  other.seal(good),
		"expired":            oc.seal(flight{State: "s", Nonce: "n", Verifier: "v", Expires: now.Add(-time.Second).Unix()}),
		"without a verifier": oc.seal(flight{State: "s", Nonce: "n", Expires: now.Add(time.Minute).Unix()}),
		"no signature":       body,
		"body changed":       base64.RawURLEncoding.EncodeToString([]byte(`{"s":"x","n":"n","v":"v","e":9999999999}`)) + "." + mac,
		"not base64":         "%%%." + mac,
		"oversized":          sealed + strings.Repeat("A", 2048),
		"empty":              "",
	} {
		if _, ok := oc.open(v, now); ok {
			t.Errorf("%s cookie opened", name)
		}
	}
}
