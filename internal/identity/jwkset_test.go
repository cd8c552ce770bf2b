package identity

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// TestJWKSFetchedSet: what the verifier keeps of a fetched key set, now that jwkset fetches and
// reads it. Keys it would refuse in a key file are skipped one by one (the usable key of the
// set still verifies); a response over maxKeyDocSize fails the fetch; a set holding a key that
// is not a JWK at all, or a document that is a single JWK rather than a set, fails the fetch too
// (jwkset reads only sets, and only whole) — and in every failure the last good set is kept.
// The request names what it accepts and who asks.
func TestJWKSFetchedSet(t *testing.T) {
	e := newEnv(t, nil)
	tok := func(kid string) string {
		return sign(jwt.SigningMethodRS256, rsaKey, kid, claimsFor("report-generator", agentIss, aud, e.clk.Now()))
	}
	short, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	enc := rsaJWK("enc-1", &rsaKey.PublicKey)
	enc["use"] = "enc"
	// A whole private key published in the set (an issuer's misconfiguration) is refused.
	pk, err := jwkset.NewJWKFromKey(rsaKey, jwkset.JWKOptions{Marshal: jwkset.JWKMarshalOptions{Private: true},
		Metadata: jwkset.JWKMetadataOptions{KID: "priv-1", ALG: jwkset.AlgRS256}})
	if err != nil {
		t.Fatal(err)
	}
	var private map[string]any
	if b, err := json.Marshal(pk.Marshal()); err != nil || json.Unmarshal(b, &private) != nil || private["d"] == nil {
		t.Fatalf("private JWK: %s, %v", b, err)
	}
	e.idp.set(jwksDoc(rsaJWK("short-1", &short.PublicKey), enc, private, rsaJWK("rsa-1", &rsaKey.PublicKey)), false)
	if _, err := e.v.Verify(bg, Credentials{BearerToken: tok("rsa-1")}); err != nil {
		t.Fatalf("the usable key of a set with unusable ones: %v", err)
	}
	for _, kid := range []string{"short-1", "enc-1", "priv-1"} {
		e.clk.Add(DefaultMinRefreshInterval)
		_, err := e.v.Verify(bg, Credentials{BearerToken: tok(kid)})
		mustCode(t, err, "credential_invalid")
	}

	single, _ := json.Marshal(rsaJWK("rsa-9", &rsaKey.PublicKey))
	notJWK := []byte(`{"keys":[{"kty":"RSA","kid":"rsa-9","n":"%%%","e":"AQAB"}]}`)
	huge := []byte(`{"keys":[],"pad":"` + strings.Repeat("x", maxKeyDocSize) + `"}`)
	for name, doc := range map[string][]byte{"single JWK": single, "malformed key": notJWK, "over the size bound": huge} {
		e.idp.set(doc, false)
		before := e.idp.fetches.Load()
		e.clk.Add(DefaultMinRefreshInterval)
		_, err := e.v.Verify(bg, Credentials{BearerToken: tok("rsa-9")})
		mustCode(t, err, "credential_invalid")
		if n := e.idp.fetches.Load(); n != before+1 {
			t.Errorf("%s: %d fetches for an unknown kid, want 1", name, n-before)
		}
		if _, err := e.v.Verify(bg, Credentials{BearerToken: tok("rsa-1")}); err != nil {
			t.Errorf("%s: last good set not kept: %v", name, err)
		}
	}
	if got := e.idp.lastRequest().Header; got.Get("User-Agent") != jwksUserAgent || !strings.Contains(got.Get("Accept"), "application/jwk-set+json") {
		t.Errorf("request headers: %v", got)
	}
}

// lastRequest is the last request the fake issuer answered.
func (f *fakeIdP) lastRequest() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}
