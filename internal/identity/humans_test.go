package identity

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Approvers log in only through the approvals issuers, and never with a token the decision path
// would take as a user's or an agent's, even when one IdP mints all three.
func TestApproverLogins(t *testing.T) {
	testKeys()
	pemFile := filepath.Join(t.TempDir(), "idp.pem")
	if err := os.WriteFile(pemFile, pemPublic(&rsaKey2.PublicKey), 0o600); err != nil {
		t.Fatal(err)
	}
	decision := Config{Users: UserConfig{Issuers: []IssuerConfig{{Issuer: userIss, Audiences: []string{aud}, Algorithms: []string{"RS256"}, KeyFiles: []string{pemFile}}}}}
	logins := ApproverLoginConfig{Issuers: []IssuerConfig{{Issuer: userIss, Algorithms: []string{"RS256"}, KeyFiles: []string{pemFile}}}}
	clk := &clock{t: t0}
	l, err := NewApproverLogins(logins, decision, Options{Now: clk.Now, HTTPClient: &http.Client{Transport: &fakeIdP{}}})
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	token := func(iss string, key any, a any) string {
		c := claimsFor("alice@example.com", iss, "", now)
		c["aud"] = a
		return sign(jwt.SigningMethodRS256, key, "", c)
	}
	got, err := l.Login(bg, token(userIss, rsaKey2, DefaultApproverAudience))
	// Expires is the token's exp: a console session kept without the token ends with it.
	if err != nil || got != (ApproverLogin{Issuer: userIss, Subject: "alice@example.com", Expires: time.Unix(now.Add(10*time.Minute).Unix(), 0)}) {
		t.Fatalf("approver login: %+v %v", got, err)
	}
	if !l.Trusts(userIss) || l.Trusts(agentIss) {
		t.Errorf("Trusts: %q %v, %q %v", userIss, l.Trusts(userIss), agentIss, l.Trusts(agentIss))
	}
	bad := []struct{ name, token, code string }{
		{"a user token", token(userIss, rsaKey2, aud), "credential_wrong_audience"},
		{"a token for users and approvers", token(userIss, rsaKey2, []string{DefaultApproverAudience, aud}), "credential_wrong_audience"},
		{"a token for approvers and users", token(userIss, rsaKey2, []string{aud, DefaultApproverAudience}), "credential_wrong_audience"},
		{"an issuer that is not an approvals issuer", token(agentIss, rsaKey, DefaultApproverAudience), "credential_invalid"},
		{"a forged token", token(userIss, rsaKey, DefaultApproverAudience), "credential_invalid"},
		{"no subject", sign(jwt.SigningMethodRS256, rsaKey2, "", jwt.MapClaims{"iss": userIss, "aud": DefaultApproverAudience, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}), "credential_invalid"},
		{"another scheme", "Basic " + token(userIss, rsaKey2, DefaultApproverAudience), "credential_malformed"},
	}
	for _, tc := range bad {
		if got, err := l.Login(bg, tc.token); err == nil || Code(err) != tc.code {
			t.Errorf("%s: %+v, code %s (%v), want %s", tc.name, got, Code(err), err, tc.code)
		}
	}

	// The same audience for users and approvers of one issuer is refused at load, by field path.
	logins.Issuers[0].Audiences = []string{"other", aud}
	if _, err := NewApproverLogins(logins, decision, Options{}); err == nil || !strings.Contains(err.Error(), "approvals.issuers[0].audiences[1]") {
		t.Errorf("shared audience: %v", err)
	}
	// Another issuer's audiences do not matter: its tokens are never verified as this one's.
	logins.Issuers[0].Issuer = "https://approvers.example/"
	if err := ValidateApproverLogins("approvals", logins, decision); err != nil {
		t.Errorf("audience shared with another issuer: %v", err)
	}
}

// FuzzApproverLogin: no string that is not a token signed by an approvals issuer logs anyone in.
func FuzzApproverLogin(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2xvZ2luLmV4YW1wbGUub3JnIiwic3ViIjoiYWxpY2UifQ.")
	f.Add("a.b.c")
	f.Add("Bearer x")
	testKeys()
	pemFile := filepath.Join(f.TempDir(), "idp.pem")
	if err := os.WriteFile(pemFile, pemPublic(&rsaKey2.PublicKey), 0o600); err != nil {
		f.Fatal(err)
	}
	l, err := NewApproverLogins(ApproverLoginConfig{Issuers: []IssuerConfig{{Issuer: userIss, Algorithms: []string{"RS256"}, KeyFiles: []string{pemFile}}}},
		Config{}, Options{HTTPClient: &http.Client{Transport: &fakeIdP{}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token string) {
		if got, err := l.Login(bg, token); err == nil {
			t.Fatalf("random token logged in %+v", got)
		}
	})
}
