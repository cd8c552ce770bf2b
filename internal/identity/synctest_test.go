package identity

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestJWKSBackgroundRefresh(t *testing.T) {
	testKeys()
	synctest.Test(t, func(t *testing.T) {
		idp := &fakeIdP{}
		idp.set(jwksDoc(rsaJWK("rsa-1", &rsaKey.PublicKey)), false)
		v, err := New(Config{
			Agents: []AgentConfig{{ID: "a"}},
			JWTIssuers: []IssuerConfig{{Issuer: agentIss, Audiences: []string{aud}, Algorithms: []string{"RS256"},
				JWKSURL: "https://idp.example/jwks", RefreshInterval: 10 * time.Minute}},
		}, Options{HTTPClient: &http.Client{Transport: idp}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		v.Start(ctx)
		synctest.Wait()
		if n := idp.fetches.Load(); n != 1 {
			t.Fatalf("fetches at start = %d, want 1", n)
		}
		tok := func(k any, kid string) string {
			return sign(jwt.SigningMethodRS256, k, kid, claimsFor("a", agentIss, aud, time.Now()))
		}
		if _, err := v.Verify(ctx, Credentials{BearerToken: tok(rsaKey, "rsa-1")}); err != nil {
			t.Fatal(err)
		}
		// The issuer publishes a second key; the background refresh picks it up on schedule,
		// so a token with the new kid needs no fetch of its own.
		idp.set(jwksDoc(rsaJWK("rsa-1", &rsaKey.PublicKey), rsaJWK("rsa-2", &rsaKey2.PublicKey)), false)
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n := idp.fetches.Load(); n != 2 {
			t.Fatalf("fetches after one interval = %d, want 2", n)
		}
		if _, err := v.Verify(ctx, Credentials{BearerToken: tok(rsaKey2, "rsa-2")}); err != nil {
			t.Fatal(err)
		}
		if n := idp.fetches.Load(); n != 2 {
			t.Errorf("a known kid caused a fetch: %d", n)
		}
		// The issuer fails for an hour: six failed refreshes, and the last good set still verifies.
		idp.set(nil, true)
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := idp.fetches.Load(); n != 8 {
			t.Errorf("fetches after an hour of failures = %d, want 8", n)
		}
		if _, err := v.Verify(ctx, Credentials{BearerToken: tok(rsaKey2, "rsa-2")}); err != nil {
			t.Errorf("last good set dropped after failures: %v", err)
		}
		cancel()
		synctest.Wait() // the refresher has exited
	})
}

func TestMemoryNonceStoreExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewMemoryNonceStore(nil)
		ctx := context.Background()
		use := func(k string) bool {
			f, err := s.Use(ctx, k, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		if !use("a") || use("a") {
			t.Fatal("first use not fresh or second use fresh")
		}
		time.Sleep(time.Minute - time.Nanosecond)
		if use("a") {
			t.Error("nonce forgotten before its ttl")
		}
		time.Sleep(time.Nanosecond)
		if !use("b") {
			t.Error("fresh nonce refused")
		}
		// "a" has expired and is swept by the next Use.
		if s.Len() != 1 || !use("a") {
			t.Errorf("after expiry: len %d", s.Len())
		}
		// Full: refuse (fail closed) rather than forget early.
		s.maxSize = 2
		if _, err := s.Use(ctx, "c", time.Minute); Code(err) != "identity_unavailable" {
			t.Errorf("full store: %v", err)
		}
		time.Sleep(2 * time.Minute)
		if !use("c") {
			t.Error("store did not make room after expiry")
		}
	})
}

func TestSignatureReplayWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		v, err := New(Config{Agents: []AgentConfig{{ID: "a", SigningKeys: []SigningKeyConfig{{ID: "k", PublicKey: b64(e.sigA.Public().(ed25519PublicKey))}}}}},
			Options{Nonces: NewMemoryNonceStore(nil)})
		if err != nil {
			t.Fatal(err)
		}
		r := e.signedRequestAt(t, "k", e.sigA, `{}`, time.Now())
		if _, err := v.Verify(bg, CredentialsFromRequest(r, []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
		// Inside the window: a replay. Past the window: stale — never accepted again.
		time.Sleep(DefaultSignatureMaxAge)
		_, err = v.Verify(bg, CredentialsFromRequest(r, []byte(`{}`)))
		mustCode(t, err, "signature_replayed")
		time.Sleep(time.Second)
		_, err = v.Verify(bg, CredentialsFromRequest(r, []byte(`{}`)))
		mustCode(t, err, "signature_stale")
	})
}
