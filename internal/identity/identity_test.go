package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

const (
	agentIss = "https://agents.idp.example"
	userIss  = "https://login.example.org"
	aud      = "portcullis"
)

type env struct {
	v     *Verifier
	clk   *clock
	keys  *MemoryKeyStore
	idp   *fakeIdP
	dir   string
	sigA  ed25519.PrivateKey // signing key "a-key" of agent report-generator
	sigB  ed25519.PrivateKey // signing key "b-key" of agent cleaner
	hsKey []byte
}

func newEnv(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	testKeys()
	e := &env{clk: &clock{t: t0}, keys: NewMemoryKeyStore(), idp: &fakeIdP{}, dir: t.TempDir()}
	e.idp.set(jwksDoc(rsaJWK("rsa-1", &rsaKey.PublicKey), ecJWK("ec-1", &ecKey.PublicKey), edJWK("ed-1", edPub)), false)
	_, e.sigA, _ = ed25519.GenerateKey(nil)
	_, e.sigB, _ = ed25519.GenerateKey(nil)
	pemFile := filepath.Join(e.dir, "user-idp.pem")
	if err := os.WriteFile(pemFile, pemPublic(&rsaKey2.PublicKey), 0o600); err != nil {
		t.Fatal(err)
	}
	e.hsKey = bytes.Repeat([]byte("s3cret-"), 6)
	hsFile := filepath.Join(e.dir, "hs.jwk")
	if err := os.WriteFile(hsFile, []byte(`{"kty":"oct","k":"`+b64(e.hsKey)+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Roles: map[string]RoleConfig{"reporting": {Permissions: []string{"sales_read"}}, "ops": {Permissions: []string{"file_delete"}}},
		Agents: []AgentConfig{
			{ID: "report-generator", Roles: []string{"reporting"}, Permissions: []string{"export"},
				SigningKeys: []SigningKeyConfig{{ID: "a-key", PublicKey: base64.StdEncoding.EncodeToString(e.sigA.Public().(ed25519.PublicKey))}}},
			{ID: "cleaner", Roles: []string{"ops"}, TrustAssertedUser: true,
				SigningKeys: []SigningKeyConfig{{ID: "b-key", PublicKey: string(pemPublic(e.sigB.Public()))}}},
			{ID: "hs-agent"},
		},
		JWTIssuers: []IssuerConfig{
			{Issuer: agentIss, Audiences: []string{aud}, Algorithms: []string{"RS256", "ES256", "EdDSA"}, JWKSURL: "https://agents.idp.example/jwks"},
			{Issuer: "https://hs.example", Audiences: []string{aud}, Algorithms: []string{"HS256"}, KeyFiles: []string{hsFile}, Agents: []string{"hs-agent"}},
		},
		Users: UserConfig{
			Issuers:          []IssuerConfig{{Issuer: userIss, Audiences: []string{aud}, Algorithms: []string{"RS256"}, KeyFiles: []string{pemFile}}},
			PermissionsClaim: "scope",
			Attributes:       map[string]string{"region": "regions", "clearance": "clearance"},
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := New(cfg, Options{Keys: e.keys, Nonces: NewMemoryNonceStore(e.clk.Now), Now: e.clk.Now,
		HTTPClient: &http.Client{Transport: e.idp}})
	if err != nil {
		t.Fatal(err)
	}
	e.v = v
	return e
}

type ed25519PublicKey = ed25519.PublicKey

func (e *env) signedRequest(t *testing.T, keyID string, key ed25519.PrivateKey, body string) *http.Request {
	t.Helper()
	return e.signedRequestAt(t, keyID, key, body, e.clk.Now())
}

func (e *env) signedRequestAt(t *testing.T, keyID string, key ed25519.PrivateKey, body string, at time.Time) *http.Request {
	t.Helper()
	r, _ := http.NewRequest("POST", "https://gate.example/v1/decide", strings.NewReader(body))
	s := &httpsig.Signer{KeyID: keyID, Key: key, Now: func() time.Time { return at }}
	if err := s.Sign(r, []byte(body)); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConfigValidate(t *testing.T) {
	good := Config{
		Roles:  map[string]RoleConfig{"r": {}},
		Agents: []AgentConfig{{ID: "a", Roles: []string{"r"}}},
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"duplicate agent", func(c *Config) { c.Agents = append(c.Agents, AgentConfig{ID: "a"}) }, []string{"agents[1].id: agent \"a\" is declared twice"}},
		{"bad id", func(c *Config) { c.Agents[0].ID = "bad id" }, []string{"agents[0].id: agent id \"bad id\" must match"}},
		{"unknown role", func(c *Config) { c.Agents[0].Roles = []string{"nope"} }, []string{"agents[0].roles[0]: role \"nope\" is not defined"}},
		{"bad signing key", func(c *Config) {
			c.Agents[0].SigningKeys = []SigningKeyConfig{{ID: "k", PublicKey: "AAAA"}}
		}, []string{"agents[0].signing_keys[0].public_key: public key is 3 bytes, want 32"}},
		{"alg none", func(c *Config) {
			c.JWTIssuers = []IssuerConfig{{Issuer: "i", Audiences: []string{"x"}, Algorithms: []string{"none"}, KeyFiles: []string{"f"}}}
		}, []string{"jwt_issuers[0].algorithms[0]: algorithm \"none\" is not allowed"}},
		{"hs and rs mixed", func(c *Config) {
			c.JWTIssuers = []IssuerConfig{{Issuer: "i", Audiences: []string{"x"}, Algorithms: []string{"RS256", "HS256"}, KeyFiles: []string{"f"}}}
		}, []string{"jwt_issuers[0].algorithms: HMAC (HS*) and public-key algorithms cannot be mixed"}},
		{"no audience, no keys", func(c *Config) {
			c.Users.Issuers = []IssuerConfig{{Issuer: "i", Algorithms: []string{"RS256"}}}
		}, []string{"users.issuers[0].audiences: at least one audience", "users.issuers[0]: one of jwks_url or key_files"}},
		{"plain http jwks", func(c *Config) {
			c.JWTIssuers = []IssuerConfig{{Issuer: "i", Audiences: []string{"x"}, Algorithms: []string{"RS256"}, JWKSURL: "http://idp.example/jwks"}}
		}, []string{"jwt_issuers[0].jwks_url: must be https"}},
		{"leeway too large", func(c *Config) {
			c.JWTIssuers = []IssuerConfig{{Issuer: "i", Audiences: []string{"x"}, Algorithms: []string{"RS256"}, KeyFiles: []string{"f"}, Leeway: time.Hour}}
		}, []string{"jwt_issuers[0].leeway: must be within [0, 5m0s]"}},
		{"issuer for undeclared agent", func(c *Config) {
			c.JWTIssuers = []IssuerConfig{{Issuer: "i", Audiences: []string{"x"}, Algorithms: []string{"RS256"}, KeyFiles: []string{"f"}, Agents: []string{"ghost"}}}
		}, []string{"jwt_issuers[0].agents[0]: agent \"ghost\" is not declared"}},
		{"signature window", func(c *Config) { c.Signatures.MaxAge = 2 * time.Hour }, []string{"signatures.max_age: must be within (0, 1h]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.Agents = append([]AgentConfig(nil), good.Agents...)
			tc.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("invalid config accepted")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d = %q, want prefix %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestAPIKeys(t *testing.T) {
	e := newEnv(t, nil)
	key1, rec1, err := CreateAPIKey(bg, e.keys, "report-generator", "ci", e.clk.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key1, "pcl_"+rec1.ID+"_") || strings.Contains(rec1.Hash, key1) || len(rec1.Hash) != 64 {
		t.Fatalf("key %q / record %+v", key1, rec1)
	}
	a, err := e.v.Verify(bg, Credentials{APIKey: key1})
	if err != nil {
		t.Fatal(err)
	}
	want := &Agent{ID: "report-generator", Roles: []string{"reporting"}, Permissions: []string{"export"},
		RolePermissions: map[string][]string{"reporting": {"sales_read"}}, Method: MethodAPIKey, CredentialID: "api_key:" + rec1.ID}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("agent (-want +got):\n%s", diff)
	}
	if !a.HasPermission("sales_read") || !a.HasRolePermission("reporting", "sales_read") || a.HasRolePermission("reporting", "file_delete") || a.HasPermission("file_delete") {
		t.Error("role/permission checks wrong")
	}

	// Rotation: a second key may coexist, a third may not.
	key2, rec2, err := CreateAPIKey(bg, e.keys, "report-generator", "rotation", e.clk.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := CreateAPIKey(bg, e.keys, "report-generator", "third", e.clk.Now(), 0); !errors.Is(err, ErrKeyLimit) {
		t.Fatalf("third active key: err = %v, want ErrKeyLimit", err)
	}
	for _, k := range []string{key1, key2} {
		if _, err := e.v.Verify(bg, Credentials{APIKey: k}); err != nil {
			t.Errorf("during rotation key %s: %v", k[:20], err)
		}
	}
	if err := e.keys.Revoke(bg, rec1.ID, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	// A revoked key frees its slot.
	if _, _, err := CreateAPIKey(bg, e.keys, "report-generator", "third", e.clk.Now(), 0); err != nil {
		t.Errorf("after revoking: %v", err)
	}
	tampered := key2[:len(key2)-1] + "A"
	if strings.HasSuffix(key2, "A") {
		tampered = key2[:len(key2)-1] + "B"
	}
	_, other, _ := NewAPIKey("report-generator", "", e.clk.Now(), 0) // never stored
	tests := []struct {
		name string
		key  string
		code string
	}{
		{"revoked", key1, "credential_revoked"},
		{"tampered secret", tampered, "credential_invalid"},
		{"unknown id", "pcl_" + other.ID + key2[len("pcl_")+16:], "credential_invalid"},
		{"wrong prefix", "xyz_" + key2[4:], "credential_malformed"},
		{"truncated", key2[:30], "credential_malformed"},
		{"upper-case id", "pcl_" + strings.ToUpper(rec2.ID) + key2[len("pcl_")+16:], "credential_malformed"},
		{"huge", "pcl_" + strings.Repeat("a", 10000), "credential_malformed"},
	}
	for _, tc := range tests {
		_, err := e.v.Verify(bg, Credentials{APIKey: tc.key})
		if Code(err) != tc.code {
			t.Errorf("%s: code %s (%v), want %s", tc.name, Code(err), err, tc.code)
		}
	}
	e.clk.Add(24 * time.Hour)
	_, err = e.v.Verify(bg, Credentials{APIKey: key1})
	mustCode(t, err, "credential_revoked") // revocation wins over expiry
	k3, _, _ := CreateAPIKey(bg, e.keys, "cleaner", "", e.clk.Now(), time.Minute)
	e.clk.Add(time.Minute)
	_, err = e.v.Verify(bg, Credentials{APIKey: k3})
	mustCode(t, err, "credential_expired")
}

func TestAPIKeyScopedToItsAgent(t *testing.T) {
	e := newEnv(t, nil)
	keyA, _, _ := CreateAPIKey(bg, e.keys, "report-generator", "", e.clk.Now(), 0)
	_, err := e.v.Verify(bg, Credentials{APIKey: keyA, ClaimedAgent: "cleaner"})
	mustCode(t, err, "agent_mismatch")
	a, err := e.v.Verify(bg, Credentials{APIKey: keyA, ClaimedAgent: "report-generator"})
	if err != nil || a.ID != "report-generator" {
		t.Errorf("own agent: %v %v", a, err)
	}
	// A key for an agent that is no longer declared authenticates nobody.
	ghost, _, _ := CreateAPIKey(bg, e.keys, "retired-agent", "", e.clk.Now(), 0)
	_, err = e.v.Verify(bg, Credentials{APIKey: ghost})
	mustCode(t, err, "agent_unknown")
}

func TestFileKeyStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", KeyFileName)
	s1, err := OpenFileKeyStore(path)
	if err != nil {
		t.Fatal(err)
	}
	key, rec, err := CreateAPIKey(bg, s1, "agent-1", "first", t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte(key[len("pcl_")+17:])) {
		t.Fatal("the key file contains the secret")
	}
	// A second process (another store on the same file) sees the key and revokes it; the
	// first sees the revocation on its next lookup.
	s2, err := OpenFileKeyStore(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Lookup(bg, rec.ID)
	if diff := cmp.Diff(rec, got); err != nil || diff != "" {
		t.Fatalf("lookup from second store: %v %s", err, diff)
	}
	if err := s2.Revoke(bg, rec.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := checkAPIKey(bg, s1, key, t0.Add(2*time.Hour)); !errors.Is(err, ErrRevoked) {
		t.Errorf("first store after revocation elsewhere: %v", err)
	}
	if err := s2.Revoke(bg, "0000000000000000", t0); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
	list, _ := s1.List(bg, "agent-1")
	if len(list) != 1 || list[0].Status(t0.Add(2*time.Hour)) != "revoked" {
		t.Errorf("list = %+v", list)
	}
	// A corrupt file is an error, never "no keys".
	os.WriteFile(path, []byte(`{"version":1,"keys":[{"id":"x","bogus":1}]}`), 0o600)
	if _, err := s1.Lookup(bg, rec.ID); err == nil {
		t.Error("corrupt key file read without error")
	}
	if _, err := checkAPIKey(bg, s1, key, t0); Code(err) != "identity_unavailable" {
		t.Errorf("corrupt store: code %s (%v)", Code(err), err)
	}
}

func TestJWT(t *testing.T) {
	e := newEnv(t, nil)
	now := e.clk.Now()
	good := claimsFor("report-generator", agentIss, aud, now)
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	rsaPEM := pemPublic(&rsaKey.PublicKey)
	tests := []struct {
		name  string
		token string
		agent string
		code  string
	}{
		{"RS256", sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", good), "report-generator", ""},
		{"ES256", sign(jwt.SigningMethodES256, ecKey, "ec-1", good), "report-generator", ""},
		{"EdDSA", sign(jwt.SigningMethodEdDSA, edPriv, "ed-1", good), "report-generator", ""},
		{"no kid picks by family", sign(jwt.SigningMethodRS256, rsaKey, "", good), "report-generator", ""},
		{"HS256 issuer", sign(jwt.SigningMethodHS256, e.hsKey, "", claimsFor("hs-agent", "https://hs.example", aud, now)), "hs-agent", ""},
		{"expired", sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", with("exp", now.Add(-31*time.Second).Unix())), "", "credential_expired"},
		{"expired within leeway", sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", with("exp", now.Add(-29*time.Second).Unix())), "report-generator", ""},
		{"no exp", sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", with("exp", nil)), "", "credential_invalid"},
		{"not yet valid", sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", with("nbf", now.Add(time.Minute).Unix())), "", "credential_not_yet_valid"},
		{"issued in the future", sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", with("iat", now.Add(time.Minute).Unix())), "", "credential_not_yet_valid"},
		{"wrong audience", sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", with("aud", "another-service")), "", "credential_wrong_audience"},
		{"audience list", sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", with("aud", []string{"x", aud})), "report-generator", ""},
		{"unknown issuer", sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", with("iss", "https://evil.example")), "", "credential_invalid"},
		{"no issuer", sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", with("iss", nil)), "", "credential_invalid"},
		{"signed by another key", sign(jwt.SigningMethodRS256, rsaKey2, "rsa-1", good), "", "credential_invalid"},
		{"undeclared agent", sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", with("sub", "ghost")), "", "agent_unknown"},
		{"no subject", sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", with("sub", nil)), "", "credential_invalid"},
		{"HS issuer speaking for another agent", sign(jwt.SigningMethodHS256, e.hsKey, "", claimsFor("cleaner", "https://hs.example", aud, now)), "", "agent_mismatch"},
		{"alg not allowed for issuer", sign(jwt.SigningMethodRS512, rsaKey, "rsa-1", good), "", "credential_invalid"},
		{"garbage", "not.a.jwt", "", "credential_malformed"},
		{"two segments", "eyJhbGciOiJSUzI1NiJ9.e30", "", "credential_malformed"},
		{"unsupported scheme", "Basic dXNlcjpwYXNz", "", "credential_malformed"},
		// alg "none": crafted by hand, unsigned.
		{"alg none", forge(map[string]any{"alg": "none", "typ": "JWT"}, good, func([]byte) []byte { return nil }), "", "credential_invalid"},
		{"alg None", forge(map[string]any{"alg": "None", "typ": "JWT"}, good, func([]byte) []byte { return nil }), "", "credential_malformed"},
		// HS/RS confusion: HMAC keyed with the issuer's RSA public key (PEM and DER), kid of the RSA key.
		{"HS256 with RSA public PEM as secret", forge(map[string]any{"alg": "HS256", "kid": "rsa-1"}, good, hs256(rsaPEM)), "", "credential_invalid"},
		{"HS256 with RSA modulus as secret", forge(map[string]any{"alg": "HS256", "kid": "rsa-1"}, good, hs256(rsaKey.N.Bytes())), "", "credential_invalid"},
		// The honest RS256 path of the same hand-made forger, to show the forger itself is sound.
		{"hand-made RS256", forge(map[string]any{"alg": "RS256", "kid": "rsa-1"}, good, rs256(rsaKey)), "report-generator", ""},
		// HMAC issuer given an RS256 token for its agent: a key of the wrong family is never used.
		{"RS256 to HS issuer", forge(map[string]any{"alg": "RS256"}, claimsFor("hs-agent", "https://hs.example", aud, now), rs256(rsaKey)), "", "credential_invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := e.v.Verify(bg, Credentials{BearerToken: tc.token})
			if tc.code != "" {
				if err == nil {
					t.Fatalf("accepted as %s", a.ID)
				}
				mustCode(t, err, tc.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.ID != tc.agent || a.Method != MethodJWT {
				t.Errorf("agent = %+v", a)
			}
		})
	}
}

func TestJWTScopedToItsAgent(t *testing.T) {
	e := newEnv(t, nil)
	tok := sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", claimsFor("report-generator", agentIss, aud, e.clk.Now()))
	_, err := e.v.Verify(bg, Credentials{BearerToken: tok, ClaimedAgent: "cleaner"})
	mustCode(t, err, "agent_mismatch")
}

func TestJWKSRotationAndFailure(t *testing.T) {
	e := newEnv(t, nil)
	tok := func(key any, kid string) string {
		return sign(jwt.SigningMethodRS256, key, kid, claimsFor("report-generator", agentIss, aud, e.clk.Now()))
	}
	if _, err := e.v.Verify(bg, Credentials{BearerToken: tok(rsaKey, "rsa-1")}); err != nil {
		t.Fatal(err)
	}
	if n := e.idp.fetches.Load(); n != 1 {
		t.Fatalf("fetches after first token = %d, want 1 (lazy first fetch)", n)
	}
	// The issuer rotates to rsa-2. A token with the new kid triggers one refresh...
	e.idp.set(jwksDoc(rsaJWK("rsa-2", &rsaKey2.PublicKey)), false)
	e.clk.Add(DefaultMinRefreshInterval)
	if _, err := e.v.Verify(bg, Credentials{BearerToken: tok(rsaKey2, "rsa-2")}); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	// ...and unknown kids within the minimum interval do not hammer the issuer.
	for range 20 {
		_, err := e.v.Verify(bg, Credentials{BearerToken: tok(rsaKey, "made-up")})
		mustCode(t, err, "credential_invalid")
	}
	if n := e.idp.fetches.Load(); n != 2 {
		t.Errorf("fetches = %d, want 2", n)
	}
	// The issuer goes down: the last good set keeps working.
	e.idp.set(nil, true)
	e.clk.Add(time.Hour)
	_, err := e.v.Verify(bg, Credentials{BearerToken: tok(rsaKey, "unknown-kid")})
	mustCode(t, err, "credential_invalid")
	if _, err := e.v.Verify(bg, Credentials{BearerToken: tok(rsaKey2, "rsa-2")}); err != nil {
		t.Errorf("last good set not kept: %v", err)
	}
}

func TestJWKSUnavailableAtStart(t *testing.T) {
	e := newEnv(t, nil)
	e.idp.set(nil, true)
	_, err := e.v.Verify(bg, Credentials{BearerToken: sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", claimsFor("report-generator", agentIss, aud, e.clk.Now()))})
	mustCode(t, err, "identity_unavailable")
}

func TestSignedRequests(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Agents[1].SigningKeys = append(c.Agents[1].SigningKeys, SigningKeyConfig{ID: "b-old", PublicKey: b64(edPub), NotAfter: t0})
	})
	body := `{"tool":"fetch_sales_data"}`
	r := e.signedRequest(t, "a-key", e.sigA, body)
	a, err := e.v.Verify(bg, CredentialsFromRequest(r, []byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "report-generator" || a.Method != MethodSignature || a.CredentialID != "signing_key:a-key" {
		t.Errorf("agent = %+v", a)
	}
	// Replay: the very same request again.
	_, err = e.v.Verify(bg, CredentialsFromRequest(r, []byte(body)))
	mustCode(t, err, "signature_replayed")

	tests := []struct {
		name  string
		build func() (*http.Request, string)
		creds func(r *http.Request, body string) Credentials
		code  string
	}{
		{"tampered body", func() (*http.Request, string) {
			return e.signedRequest(t, "a-key", e.sigA, body), `{"tool":"delete_file"}`
		}, nil, "credential_invalid"},
		{"tampered method", func() (*http.Request, string) {
			r := e.signedRequest(t, "a-key", e.sigA, body)
			r.Method = "PUT"
			return r, body
		}, nil, "credential_invalid"},
		{"tampered path", func() (*http.Request, string) {
			r := e.signedRequest(t, "a-key", e.sigA, body)
			r.URL.Path = "/v1/outcome"
			return r, body
		}, nil, "credential_invalid"},
		{"stale", func() (*http.Request, string) {
			r := e.signedRequest(t, "a-key", e.sigA, body)
			e.clk.Add(DefaultSignatureMaxAge + time.Second)
			return r, body
		}, nil, "signature_stale"},
		{"unknown key", func() (*http.Request, string) { return e.signedRequest(t, "z-key", e.sigA, body), body }, nil, "credential_invalid"},
		{"key of A claimed as B", func() (*http.Request, string) { return e.signedRequest(t, "a-key", e.sigA, body), body },
			func(r *http.Request, b string) Credentials {
				c := CredentialsFromRequest(r, []byte(b))
				c.ClaimedAgent = "cleaner"
				return c
			}, "agent_mismatch"},
		{"A's private key under B's key id", func() (*http.Request, string) { return e.signedRequest(t, "b-key", e.sigA, body), body }, nil, "credential_invalid"},
		{"retired key", func() (*http.Request, string) { return e.signedRequest(t, "b-old", edPriv, body), body }, nil, "credential_expired"},
		{"signature plus api key", func() (*http.Request, string) {
			r := e.signedRequest(t, "a-key", e.sigA, body)
			r.Header.Set("X-API-Key", "pcl_x")
			return r, body
		}, nil, "credential_ambiguous"},
		{"no credential", func() (*http.Request, string) {
			r, _ := http.NewRequest("POST", "https://gate.example/v1/decide", nil)
			return r, body
		}, nil, "credential_missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, b := tc.build()
			creds := CredentialsFromRequest(r, []byte(b))
			if tc.creds != nil {
				creds = tc.creds(r, b)
			}
			a, err := e.v.Verify(bg, creds)
			if err == nil {
				t.Fatalf("accepted as %+v", a)
			}
			mustCode(t, err, tc.code)
		})
	}
	// B's own key works for B.
	e.clk.Add(-DefaultSignatureMaxAge - time.Second)
	rb := e.signedRequest(t, "b-key", e.sigB, body)
	if a, err := e.v.Verify(bg, CredentialsFromRequest(rb, []byte(body))); err != nil || a.ID != "cleaner" {
		t.Errorf("cleaner's own key: %v %v", a, err)
	}
}

func TestUsers(t *testing.T) {
	e := newEnv(t, nil)
	agentA, _ := e.v.Agent("report-generator")
	trusted, _ := e.v.Agent("cleaner")
	now := e.clk.Now()
	uc := claimsFor("alice", userIss, aud, now)
	uc["scope"] = "data_export sales_read"
	uc["regions"] = []string{"eu", "us"}
	uc["clearance"] = "confidential"
	uc["salary"] = "not an attribute"
	tok := sign(jwt.SigningMethodRS256, rsaKey2, "", uc)

	u, err := e.v.User(bg, &agentA, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Keys from a PEM file have no kid: a token naming one still verifies against them.
	if u2, err := e.v.User(bg, &agentA, sign(jwt.SigningMethodRS256, rsaKey2, "idp-2026", uc), nil); err != nil || u2.ID != "alice" {
		t.Errorf("token with a kid against kid-less PEM keys: %v", err)
	}
	want := &User{ID: "alice", Permissions: []string{"data_export", "sales_read"}, Verified: true, Issuer: userIss,
		Attributes: map[string][]string{"region": {"eu", "us"}, "clearance": {"confidential"}}}
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("user (-want +got):\n%s", diff)
	}
	if !u.HasPermission("data_export") || u.HasPermission("admin") {
		t.Error("HasPermission wrong")
	}

	// No user: nil, which has nothing.
	u, err = e.v.User(bg, &agentA, "", nil)
	if err != nil || u != nil || u.HasPermission("data_export") || u.Attribute("region") != nil {
		t.Errorf("no user: %v %v", u, err)
	}
	asserted := &AssertedUser{ID: "bob", Permissions: []string{"data_export"}, Attributes: map[string][]string{"region": {"eu"}}}
	_, err = e.v.User(bg, &agentA, "", asserted)
	mustCode(t, err, "user_assertion_untrusted")
	u, err = e.v.User(bg, &trusted, "", asserted)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&User{ID: "bob", Permissions: []string{"data_export"}, Attributes: map[string][]string{"region": {"eu"}}, Asserted: true}, u); diff != "" {
		t.Errorf("asserted user: %s", diff)
	}
	_, err = e.v.User(bg, &trusted, tok, asserted)
	mustCode(t, err, "credential_ambiguous")
	_, err = e.v.User(bg, &trusted, "", &AssertedUser{ID: strings.Repeat("x", 1000)})
	mustCode(t, err, "user_token_invalid")

	bad := []struct{ name, token string }{
		{"agent issuer is not a user issuer", sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", claimsFor("alice", agentIss, aud, now))},
		{"expired", sign(jwt.SigningMethodRS256, rsaKey2, "", claimsFor("alice", userIss, aud, now.Add(-time.Hour)))},
		{"forged", sign(jwt.SigningMethodRS256, rsaKey, "", uc)},
		{"alg none", forge(map[string]any{"alg": "none"}, uc, func([]byte) []byte { return nil })},
		{"bad scope type", sign(jwt.SigningMethodRS256, rsaKey2, "", func() jwt.MapClaims { c := claimsFor("alice", userIss, aud, now); c["scope"] = 7; return c }())},
	}
	for _, tc := range bad {
		_, err := e.v.User(bg, &agentA, tc.token, nil)
		if Code(err) != "user_token_invalid" {
			t.Errorf("%s: code %s (%v)", tc.name, Code(err), err)
		}
	}
}

func TestCredentialsFromRequest(t *testing.T) {
	r, _ := http.NewRequest("GET", "https://x/", nil)
	r.Header.Set("Authorization", "Bearer pcl_abc")
	if c := CredentialsFromRequest(r, nil); c.APIKey != "pcl_abc" || c.BearerToken != "" {
		t.Errorf("%+v", c)
	}
	r.Header.Set("Authorization", "bearer eyJx.y.z")
	if c := CredentialsFromRequest(r, nil); c.BearerToken != "eyJx.y.z" || c.APIKey != "" {
		t.Errorf("%+v", c)
	}
	r.Header.Set("X-API-Key", "pcl_def")
	e := newEnv(t, nil)
	_, err := e.v.Verify(bg, CredentialsFromRequest(r, nil))
	mustCode(t, err, "credential_ambiguous")
}

func TestErrorCodes(t *testing.T) {
	wrapped := errors.Join(errors.New("x"), ErrReplay)
	if Code(wrapped) != "signature_replayed" || Code(errors.New("other")) != "identity_error" || !errors.Is(wrapped, ErrReplay) {
		t.Error("codes do not survive wrapping")
	}
}

func FuzzVerifyCredential(f *testing.F) {
	f.Add("pcl_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.", "sig=(\"@method\");created=1;keyid=\"a-key\"")
	f.Add("", "a.b.c", "")
	f.Fuzz(func(t *testing.T, key, token, sigInput string) {
		e := newEnvF(t)
		r, _ := http.NewRequest("POST", "https://gate.example/v1/decide", nil)
		if sigInput != "" {
			r.Header.Set("Signature-Input", sigInput)
			r.Header.Set("Signature", "sig=:AAAA:")
		}
		c := CredentialsFromRequest(r, nil)
		c.APIKey, c.BearerToken = key, token
		if a, err := e.Verify(bg, c); err == nil {
			t.Fatalf("random credential authenticated %+v", a)
		}
	})
}

var fuzzVerifier *Verifier

func newEnvF(t *testing.T) *Verifier {
	if fuzzVerifier == nil {
		fuzzVerifier = newEnv(t, nil).v
	}
	return fuzzVerifier
}

func TestConcurrentReplay(t *testing.T) {
	e := newEnv(t, nil)
	body := `{"tool":"fetch_sales_data"}`
	r := e.signedRequest(t, "a-key", e.sigA, body)
	const n = 16
	results := make(chan error, n)
	for range n {
		go func() {
			// Each goroutine sees its own copy of the request, as separate connections would.
			c := r.Clone(bg)
			_, err := e.v.Verify(bg, CredentialsFromRequest(c, []byte(body)))
			results <- err
		}()
	}
	ok, replays := 0, 0
	for range n {
		switch err := <-results; Code(err) {
		case "identity_error":
			if err == nil {
				ok++
			}
		case "signature_replayed":
			replays++
		default:
			t.Errorf("unexpected: %v", err)
		}
	}
	if ok != 1 || replays != n-1 {
		t.Errorf("%d accepted and %d replays of one signed request, want 1 and %d", ok, replays, n-1)
	}
}
