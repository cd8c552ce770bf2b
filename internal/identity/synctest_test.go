package identity

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
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
		// Remembered until the end of its expiry bucket: at most one bucket width longer.
		time.Sleep(NonceBucketWidth + time.Nanosecond)
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

// An idle store frees its nonces on the sweeper's timer, without a Use to trigger it; and the
// file store deletes the journal files of expired buckets with them.
func TestNonceStoresSweepWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		m := NewMemoryNonceStore(nil)
		f, err := OpenFileNonceStore(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for i := range 1000 {
			k := fmt.Sprint("n", i)
			if ok, err := m.Use(ctx, k, time.Minute); !ok || err != nil {
				t.Fatal(ok, err)
			}
			if ok, err := f.Use(ctx, k, time.Minute); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
		go m.RunSweeper(ctx, 5*time.Second)
		go f.RunSweeper(ctx, 5*time.Second)
		time.Sleep(time.Minute + NonceBucketWidth + 5*time.Second)
		synctest.Wait()
		if m.Len() != 0 || f.Len() != 0 {
			t.Errorf("idle stores kept nonces past their expiry: memory %d, file %d", m.Len(), f.Len())
		}
		// The journal of the expired bucket is gone too (the sweep, not a rotation, deleted it).
		if names, _ := filepath.Glob(filepath.Join(f.dir, nonceFilePrefix+"*")); len(names) > 1 {
			t.Errorf("expired journal files kept: %v", names)
		}
		cancel()
		synctest.Wait()
	})
}

// The store refuses (fail closed) beyond its bound and counts across buckets.
func TestMemoryNonceStoreBoundAcrossBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewMemoryNonceStore(nil)
		s.maxSize = 3
		ctx := context.Background()
		for _, k := range []string{"a", "b", "c"} {
			if ok, err := s.Use(ctx, k, time.Minute); !ok || err != nil {
				t.Fatal(k, ok, err)
			}
			time.Sleep(NonceBucketWidth) // each in its own bucket
		}
		if _, err := s.Use(ctx, "d", time.Minute); Code(err) != "identity_unavailable" {
			t.Errorf("over the bound: %v", err)
		}
		for _, k := range []string{"a", "b", "c"} {
			if ok, _ := s.Use(ctx, k, time.Minute); ok {
				t.Errorf("%s: replay accepted", k)
			}
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

// The claim store is once-only like the nonce store, with its own buckets (a minute wide): a
// claim is refused again until its ttl has passed, forgotten at most one bucket after, refused
// when the store is full, and freed by the sweeper when idle.
func TestMemoryClaimStoreExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := NewMemoryClaimStore(nil)
		use := func(k string) bool {
			f, err := s.Use(ctx, k, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		if !use("\x00outcome\x00a") || use("\x00outcome\x00a") {
			t.Fatal("first claim not fresh or second claim fresh")
		}
		time.Sleep(time.Hour - time.Nanosecond)
		if use("\x00outcome\x00a") {
			t.Error("claim forgotten before its ttl")
		}
		time.Sleep(ClaimBucketWidth + time.Nanosecond)
		if s.Len() != 1 || !use("\x00outcome\x00a") {
			t.Errorf("claim not forgotten a bucket after its ttl (len %d)", s.Len())
		}
		s.maxSize = 1
		if _, err := s.Use(ctx, "\x00outcome\x00b", time.Hour); Code(err) != "identity_unavailable" {
			t.Errorf("full store: %v", err)
		}
		go s.RunSweeper(ctx, 5*time.Second)
		time.Sleep(time.Hour + ClaimBucketWidth + 5*time.Second)
		if s.Len() != 0 {
			t.Errorf("idle store kept %d claims past their bucket", s.Len())
		}
	})
}
