package app

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

// testIdP is an identity provider with its own Ed25519 key, published as a PEM key file.
type testIdP struct {
	iss     string
	priv    ed25519.PrivateKey
	keyFile string
}

func newTestIdP(t *testing.T, iss string) *testIdP {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "idp.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testIdP{iss: iss, priv: priv, keyFile: f}
}

// issuer is this IdP as a configuration entry with the given audience.
func (p *testIdP) issuer(aud string) identity.IssuerConfig {
	return identity.IssuerConfig{Issuer: p.iss, Audiences: []string{aud}, Algorithms: []string{"EdDSA"}, KeyFiles: []string{p.keyFile}}
}

// token signs a token for sub with the given audience(s).
func (p *testIdP) token(t *testing.T, sub string, aud ...string) string {
	t.Helper()
	now := time.Now()
	var a any = aud
	if len(aud) == 1 {
		a = aud[0]
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": p.iss, "sub": sub, "aud": a,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}).SignedString(p.priv)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// held makes the demo agent open a CONSTRAIN request (an injection on an allowed tool), with the
// extra JSON fields in body (e.g. a user token), and returns its approval ID.
func (g *gateway) held(t *testing.T, extra string) string {
	t.Helper()
	body := `{"tool":"fetch_customer_names","params":{"limit":5,"filter":"' OR 1=1 UNION SELECT password FROM users --"}` + extra + `}`
	status, a := g.post("/v1/decide", g.key, []byte(body))
	if status != http.StatusOK || a.Decision != "CONSTRAIN" || a.ApprovalID == "" {
		t.Fatalf("decide: %d %+v, want a CONSTRAIN with an approval ID", status, a)
	}
	return a.ApprovalID
}

// approve calls the approvals API with cred and returns the status, the error code and the request.
func (g *gateway) approve(t *testing.T, id, cred string) (int, string, approval.Request) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/v1/approvals/"+id+"/approve", nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		approval.Request
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("approve answered %d with %q", resp.StatusCode, raw)
	}
	code := ""
	if out.Error != nil {
		code = out.Error.Code
	}
	return resp.StatusCode, code, out.Request
}

var allScopes = []approval.Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}

// An orchestrator forwards the invoking user's token as user_token. The agent behind it must not
// be able to use that token to approve its own held call: a token that authenticates a user on
// the decision path is refused by the approvals API, whatever it says.
func TestForwardedUserTokenCannotApprove(t *testing.T) {
	idp := newTestIdP(t, "https://login.example.com/")
	g := newGatewayWith(t, func(c *config.Config) {
		c.Identity.Users.Issuers = []identity.IssuerConfig{idp.issuer("portcullis-users")}
		// The same IdP logs approvers in, with tokens for the approvals audience (the default).
		c.Approvals.Logins.Issuers = []identity.IssuerConfig{{Issuer: idp.iss, Algorithms: []string{"EdDSA"}, KeyFiles: []string{idp.keyFile}}}
		c.Approvals.Approvers = []config.ApproverConfig{{ID: "alice@example.com", Issuer: idp.iss, Scopes: allScopes}}
	})
	userToken := idp.token(t, "alice@example.com", "portcullis-users")
	// Alice's token is a good user token: the orchestrator forwards it on her behalf.
	g.held(t, `,"user_token":`+jsonString(userToken))

	// The agent opens a request naming no user and tries to approve it with tokens it could hold.
	id := g.held(t, "")
	for name, tok := range map[string]string{
		"the forwarded user token": userToken,
		// A token for both audiences would be a user's token and an approver's at once.
		"a token for both audiences": idp.token(t, "alice@example.com", "portcullis-users", identity.DefaultApproverAudience),
	} {
		status, code, req := g.approve(t, id, tok)
		if status != http.StatusUnauthorized || code != "not_an_approver" {
			t.Fatalf("%s approved: %d %q %+v", name, status, code, req)
		}
	}
	// A token the decision path cannot use as a user token is refused there...
	approverToken := idp.token(t, "alice@example.com", identity.DefaultApproverAudience)
	body := `{"tool":"fetch_customer_names","params":{"limit":5},"user_token":` + jsonString(approverToken) + `}`
	if status, a := g.post("/v1/decide", g.key, []byte(body)); status == http.StatusOK && a.Decision != "DENY" {
		t.Fatalf("an approver login worked as a user token: %d %+v", status, a)
	}
	// ...and is what logs Alice in to approve.
	status, code, req := g.approve(t, id, approverToken)
	if status != http.StatusOK || req.State != approval.Approved {
		t.Fatalf("alice's approver login: %d %q %+v", status, code, req)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// With two approvals issuers (the staff IdP and a partner's), a partner token whose subject is
// Alice's ID in other letters must not approve as Alice: approvers are bound to their issuer and
// their ID is compared exactly.
func TestApproverBoundToIssuer(t *testing.T) {
	staff := newTestIdP(t, "https://login.example.com/")
	partner := newTestIdP(t, "https://partner.example.net/")
	g := newGatewayWith(t, func(c *config.Config) {
		c.Approvals.Logins.Issuers = []identity.IssuerConfig{staff.issuer(identity.DefaultApproverAudience), partner.issuer(identity.DefaultApproverAudience)}
		c.Approvals.Approvers = []config.ApproverConfig{{ID: "alice@example.com", Issuer: staff.iss, Scopes: allScopes}}
	})
	id := g.held(t, "")
	for name, tok := range map[string]string{
		"partner, upper case": partner.token(t, "ALICE@EXAMPLE.COM", identity.DefaultApproverAudience),
		"partner, same ID":    partner.token(t, "alice@example.com", identity.DefaultApproverAudience),
		"staff, upper case":   staff.token(t, "ALICE@EXAMPLE.COM", identity.DefaultApproverAudience),
		"staff, fullwidth":    staff.token(t, "\uff41\uff4c\uff49\uff43\uff45@example.com", identity.DefaultApproverAudience),
		"staff, trailing dot": staff.token(t, "alice@example.com.", identity.DefaultApproverAudience),
	} {
		status, code, req := g.approve(t, id, tok)
		if status != http.StatusUnauthorized || code != "not_an_approver" {
			t.Fatalf("%s approved as alice: %d %q %+v", name, status, code, req)
		}
	}
	// Alice's own login approves, and she is recorded qualified by her issuer.
	status, code, req := g.approve(t, id, staff.token(t, "alice@example.com", identity.DefaultApproverAudience))
	want := "https://login.example.com/#alice@example.com"
	if status != http.StatusOK || req.State != approval.Approved || req.ResolvedBy != want || len(req.Votes) != 1 || req.Votes[0].Approver != want {
		t.Fatalf("alice's login: %d %q %+v", status, code, req)
	}
}

// The invoking user is compared with the approver as a person would: an asserted user ID with a
// trailing space, or in fullwidth letters, is still Alice, who may not approve her own call.
func TestSelfApprovalFoldsLookalikes(t *testing.T) {
	g := newGatewayWith(t, func(c *config.Config) {
		c.Identity.Agents[0].TrustAssertedUser = true
		c.Approvals.Approvers = []config.ApproverConfig{{ID: "alice@example.com", Scopes: allScopes}}
	})
	ks, err := identity.OpenFileKeyStore(filepath.Join(g.dir, ApproverKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	aliceKey, _, err := identity.CreateAPIKey(t.Context(), ks, "alice@example.com", "test", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"alice@example.com", "alice@example.com ", "Alice@Example.com", "\uff41\uff4c\uff49\uff43\uff45@example.com", "\u00a0alice@example.com"} {
		id := g.held(t, `,"user":{"id":`+jsonString(user)+`}`)
		status, code, req := g.approve(t, id, aliceKey)
		if status != http.StatusForbidden || code != "self_approval" {
			t.Errorf("alice approved a call invoked by %q: %d %q %+v", user, status, code, req)
		}
	}
}

// A configuration reload swaps the approver logins with the identity they were checked against.
func TestApproverLoginsReload(t *testing.T) {
	idp := newTestIdP(t, "https://login.example.com/")
	g := newGateway(t)
	id := g.held(t, "")
	login := idp.token(t, "alice@example.com", identity.DefaultApproverAudience)
	if status, code, _ := g.approve(t, id, login); status != http.StatusUnauthorized || code != "not_an_approver" {
		t.Fatalf("before the reload: %d %q", status, code)
	}
	cfgPath := filepath.Join(g.dir, ConfigFile)
	orig, _ := os.ReadFile(cfgPath)
	// The issuer, and alice beside the default's demo approver.
	approvals := "  issuers:\n    - issuer: " + idp.iss + "\n      algorithms: [EdDSA]\n      key_files: [" + idp.keyFile + "]\n" +
		"  approvers:\n    - id: alice@example.com\n      issuer: " + idp.iss + "\n      scopes: [{agents: [\".*\"], tools: [\".*\"]}]\n"
	edited := bytes.Replace(orig, []byte("  approvers:\n"), []byte(approvals), 1)
	if bytes.Equal(edited, orig) {
		t.Fatal("the default configuration has no approvals.approvers list")
	}
	if err := os.WriteFile(cfgPath, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _, req := g.approve(t, id, login)
		if status == http.StatusOK && req.ResolvedBy == idp.iss+"#alice@example.com" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's login after the reload: %d %+v", status, req)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two Authorization headers on the approvals API are ambiguous — a proxy in front may have checked
// the other one — and are refused whatever each is worth, here two valid approver keys.
func TestApproverTwoAuthorizationHeadersRefused(t *testing.T) {
	g := newGatewayWith(t, func(c *config.Config) {
		c.Approvals.Approvers = []config.ApproverConfig{{ID: "alice", Scopes: allScopes}, {ID: "bob", Scopes: allScopes}}
	})
	ks, err := identity.OpenFileKeyStore(filepath.Join(g.dir, ApproverKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, who := range []string{"alice", "bob"} {
		k, _, err := identity.CreateAPIKey(t.Context(), ks, who, "test", time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	id := g.held(t, "")
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/v1/approvals/"+id+"/approve", nil)
	req.Header.Add("Authorization", "Bearer "+keys[0])
	req.Header.Add("Authorization", "Bearer "+keys[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("approve with two Authorization headers: %d %s, want 401", resp.StatusCode, raw)
	}
	// Either key alone still works: the refusal was of the ambiguity, not of the keys.
	if status, code, r := g.approve(t, id, keys[1]); status != http.StatusOK {
		t.Fatalf("approve with bob's key alone: %d %q %+v", status, code, r)
	}
}

// The approvals API's 401 says what to fix only to a caller whose credential verified: a live
// approver key, or a valid approver login, whose owner is not declared under approvals.approvers.
// Anything else — an unknown, forged, revoked or agent key — gets the generic message, so it
// learns nothing about which IDs exist. The code is not_an_approver either way.
func TestNotDeclaredApproverMessage(t *testing.T) {
	idp := newTestIdP(t, "https://login.example.com/")
	g := newGatewayWith(t, func(c *config.Config) {
		c.Approvals.Logins.Issuers = []identity.IssuerConfig{{Issuer: idp.iss, Algorithms: []string{"EdDSA"}, KeyFiles: []string{idp.keyFile}}}
		c.Approvals.Approvers = []config.ApproverConfig{{ID: "alice", Scopes: allScopes}}
	})
	ks, err := identity.OpenFileKeyStore(filepath.Join(g.dir, ApproverKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	key := func(who string) string {
		k, _, err := identity.CreateAPIKey(t.Context(), ks, who, "test", time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	revoked := key("alice")
	revokedID, _ := identity.APIKeyID(revoked)
	if err := ks.Revoke(t.Context(), revokedID, time.Now()); err != nil {
		t.Fatal(err)
	}
	alice := key("alice")
	forged := alice[:len(alice)-4] + "AAAA"
	const undeclared = "the credential is valid but its owner is not a declared approver (add it under approvals.approvers)"
	const generic = "an approver credential is required"
	id := g.held(t, "")
	for _, tc := range []struct {
		name, cred, want string
	}{
		{"a live key of an undeclared approver", key("bob"), undeclared},
		{"a valid login of an undeclared approver", idp.token(t, "carol@example.com", identity.DefaultApproverAudience), undeclared},
		{"an unknown key", "pcl_0123456789abcdef_" + strings.Repeat("A", 43), generic},
		{"a declared approver's key with a wrong secret", forged, generic},
		{"a declared approver's revoked key", revoked, generic},
		{"the agent's key", g.key, generic},
		{"a malformed credential", "nonsense", generic},
	} {
		req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/v1/approvals/"+id+"/approve", nil)
		req.Header.Set("Authorization", "Bearer "+tc.cred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || out.Error.Code != "not_an_approver" || out.Error.Message != tc.want {
			t.Errorf("%s: %d %q %q, want 401 not_an_approver %q", tc.name, resp.StatusCode, out.Error.Code, out.Error.Message, tc.want)
		}
	}
	// alice's live key still approves: the refusals above were about the credentials.
	if status, _, req := g.approve(t, id, alice); status != http.StatusOK || req.State != approval.Approved {
		t.Errorf("alice: %d %+v", status, req)
	}
}
