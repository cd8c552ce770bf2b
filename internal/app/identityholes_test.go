package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

func writePEM(t *testing.T, dir, name string, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// forgeJWT signs a token with a header of the test's choosing (golang-jwt would not write crit).
func forgeJWT(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sig, err := method.Sign(in, key)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Tokens signed by a trusted issuer (RS256 and ES256) through the real decision API: a crit
// header and a lifetime beyond max_lifetime are refused with their codes; an ordinary token works.
func TestDecideRefusesCritAndLongLivedJWT(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const iss, aud = "https://agents.idp.example", "portcullis"
	keyDir := t.TempDir()
	g := newGatewayWith(t, func(c *config.Config) {
		c.Identity.JWTIssuers = append(c.Identity.JWTIssuers,
			identity.IssuerConfig{Issuer: iss, Audiences: []string{aud}, Algorithms: []string{"RS256", "ES256"},
				KeyFiles:    []string{writePEM(t, keyDir, "rsa.pem", &rsaKey.PublicKey), writePEM(t, keyDir, "ec.pem", &ecKey.PublicKey)},
				MaxLifetime: time.Hour})
	})
	now := time.Now()
	claims := func(exp time.Time) jwt.MapClaims {
		return jwt.MapClaims{"iss": iss, "aud": aud, "sub": "report-generator-v1", "iat": now.Unix(), "exp": exp.Unix()}
	}
	body := []byte(`{"tool":"fetch_sales_data","params":{"quarter":"Q3"}}`)
	tests := []struct {
		name   string
		token  string
		status int
		code   string
	}{
		{"RS256 ordinary", forgeJWT(t, jwt.SigningMethodRS256, rsaKey, map[string]any{"alg": "RS256", "typ": "JWT"}, claims(now.Add(10*time.Minute))), http.StatusOK, ""},
		{"ES256 ordinary", forgeJWT(t, jwt.SigningMethodES256, ecKey, map[string]any{"alg": "ES256", "typ": "JWT"}, claims(now.Add(10*time.Minute))), http.StatusOK, ""},
		{"RS256 crit", forgeJWT(t, jwt.SigningMethodRS256, rsaKey, map[string]any{"alg": "RS256", "crit": []string{"urn:example:must-check"}, "urn:example:must-check": true}, claims(now.Add(10*time.Minute))), http.StatusUnauthorized, "credential_invalid"},
		{"ES256 malformed crit", forgeJWT(t, jwt.SigningMethodES256, ecKey, map[string]any{"alg": "ES256", "crit": "exp"}, claims(now.Add(10*time.Minute))), http.StatusUnauthorized, "credential_malformed"},
		{"RS256 valid for a century", forgeJWT(t, jwt.SigningMethodRS256, rsaKey, map[string]any{"alg": "RS256"}, claims(now.AddDate(100, 0, 0))), http.StatusUnauthorized, "credential_lifetime_exceeded"},
		{"ES256 two hours", forgeJWT(t, jwt.SigningMethodES256, ecKey, map[string]any{"alg": "ES256"}, claims(now.Add(2*time.Hour))), http.StatusUnauthorized, "credential_lifetime_exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, a := g.post("/v1/decide", tc.token, body)
			if status != tc.status {
				t.Fatalf("status %d (%s), want %d", status, fmtErr(a), tc.status)
			}
			if tc.code == "" {
				if a.Error != nil {
					t.Fatalf("error %s", fmtErr(a))
				}
				return
			}
			if a.Decision != "DENY" || a.Error == nil || a.Error.Code != tc.code {
				t.Errorf("decision %s, error %s; want DENY with %s", a.Decision, fmtErr(a), tc.code)
			}
		})
	}
}
