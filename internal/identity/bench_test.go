package identity

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

func BenchmarkVerifyAPIKey(b *testing.B) {
	e := mustEnv(b)
	key, _, err := CreateAPIKey(bg, e.keys, "report-generator", "", e.clk.Now(), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Verify(bg, Credentials{APIKey: key}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyAPIKeyFileStore(b *testing.B) {
	e := mustEnv(b)
	fs, err := OpenFileKeyStore(filepath.Join(b.TempDir(), KeyFileName))
	if err != nil {
		b.Fatal(err)
	}
	key, _, err := CreateAPIKey(bg, fs, "report-generator", "", e.clk.Now(), 0)
	if err != nil {
		b.Fatal(err)
	}
	v, err := New(Config{Agents: []AgentConfig{{ID: "report-generator"}}}, Options{Keys: fs})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(bg, Credentials{APIKey: key}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyJWT(b *testing.B) {
	e := mustEnv(b)
	claims := claimsFor("report-generator", agentIss, aud, e.clk.Now())
	for _, tc := range []struct {
		name   string
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{"RS256", jwt.SigningMethodRS256, rsaKey, "rsa-1"},
		{"ES256", jwt.SigningMethodES256, ecKey, "ec-1"},
		{"EdDSA", jwt.SigningMethodEdDSA, edPriv, "ed-1"},
	} {
		tok := sign(tc.method, tc.key, tc.kid, claims)
		if _, err := e.v.Verify(bg, Credentials{BearerToken: tok}); err != nil { // warms the JWKS
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.v.Verify(bg, Credentials{BearerToken: tok}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifySignature verifies signed requests with a 1 KiB body, each with a fresh nonce
// (signed before the timer starts), so the nonce store is exercised as in production.
func BenchmarkVerifySignature(b *testing.B) {
	e := mustEnv(b)
	body := []byte(`{"tool":"fetch_sales_data","params":{"q":"` + strings.Repeat("x", 990) + `"}}`)
	const batch = 4096
	reqs := make([]*http.Request, batch)
	sign := func() {
		for i := range reqs {
			r, _ := http.NewRequest("POST", "https://gate.example/v1/decide", bytes.NewReader(body))
			s := &httpsig.Signer{KeyID: "a-key", Key: e.sigA, Now: e.clk.Now}
			if err := s.Sign(r, body); err != nil {
				b.Fatal(err)
			}
			reqs[i] = r
		}
	}
	sign()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%batch == 0 {
			b.StopTimer()
			sign()
			b.StartTimer()
		}
		if _, err := e.v.Verify(bg, CredentialsFromRequest(reqs[i%batch], body)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUserToken(b *testing.B) {
	e := mustEnv(b)
	a, _ := e.v.Agent("report-generator")
	c := claimsFor("alice", userIss, aud, e.clk.Now())
	c["scope"] = "data_export sales_read"
	c["regions"] = []string{"eu"}
	tok := sign(jwt.SigningMethodRS256, rsaKey2, "", c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.User(bg, &a, tok, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// mustEnv builds the test environment for a benchmark.
func mustEnv(b *testing.B) *env {
	b.Helper()
	testKeys()
	e := &env{clk: &clock{t: time.Now()}, keys: NewMemoryKeyStore(), idp: &fakeIdP{}, dir: b.TempDir()}
	e.idp.set(jwksDoc(rsaJWK("rsa-1", &rsaKey.PublicKey), ecJWK("ec-1", &ecKey.PublicKey), edJWK("ed-1", edPub)), false)
	_, e.sigA, _ = ed25519.GenerateKey(nil)
	pemFile := filepath.Join(e.dir, "user.pem")
	if err := writeFile(pemFile, pemPublic(&rsaKey2.PublicKey)); err != nil {
		b.Fatal(err)
	}
	v, err := New(Config{
		Agents: []AgentConfig{{ID: "report-generator", SigningKeys: []SigningKeyConfig{{ID: "a-key", PublicKey: b64(e.sigA.Public().(ed25519.PublicKey))}}}},
		JWTIssuers: []IssuerConfig{{Issuer: agentIss, Audiences: []string{aud}, Algorithms: []string{"RS256", "ES256", "EdDSA"},
			JWKSURL: "https://agents.idp.example/jwks"}},
		Users: UserConfig{Issuers: []IssuerConfig{{Issuer: userIss, Audiences: []string{aud}, Algorithms: []string{"RS256"}, KeyFiles: []string{pemFile}}},
			PermissionsClaim: "scope", Attributes: map[string]string{"region": "regions"}},
	}, Options{Keys: e.keys, Nonces: NewMemoryNonceStore(nil), Now: e.clk.Now, HTTPClient: &http.Client{Transport: e.idp}})
	if err != nil {
		b.Fatal(err)
	}
	e.v = v
	return e
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

// BenchmarkFileKeyStoreLookupParallel: lookups from every CPU on one key file (-cpu 1,2 shows
// whether they wait on each other), watched, through a symbolic link stat'ed, and on what the
// store takes for a network filesystem read.
func BenchmarkFileKeyStoreLookupParallel(b *testing.B) {
	for _, tc := range []struct {
		name          string
		link, network bool
	}{{"watched", false, false}, {"stat", true, false}, {"read", false, true}} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.network {
				asNetworkFS(b)
			}
			dir := b.TempDir()
			path := filepath.Join(dir, KeyFileName)
			if tc.link { // a linked directory: the store's own writes keep the link
				if err := os.Mkdir(filepath.Join(dir, "v1"), 0o700); err != nil {
					b.Fatal(err)
				}
				if err := os.Symlink("v1", filepath.Join(dir, "data")); err != nil {
					b.Fatal(err)
				}
				path = filepath.Join(dir, "data", KeyFileName)
			}
			fs, err := OpenFileKeyStore(path)
			if err != nil {
				b.Fatal(err)
			}
			defer fs.Close()
			_, rec, err := CreateAPIKey(bg, fs, "report-generator", "", time.Now(), 0)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := fs.Lookup(bg, rec.ID); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
