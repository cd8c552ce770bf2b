package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseKeyDocument(t *testing.T) {
	testKeys()
	keys, err := parseKeyDocument(jwksDoc(rsaJWK("r", &rsaKey.PublicKey), ecJWK("e", &ecKey.PublicKey), edJWK("d", edPub),
		map[string]any{"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}), false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, k.kid+":"+k.family())
	}
	if diff := cmp.Diff([]string{"r:RS", "e:ES", "d:EdDSA"}, got); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if _, ok := keys[0].key.(*rsa.PublicKey); !ok {
		t.Error("RSA key type")
	}
	if _, ok := keys[1].key.(*ecdsa.PublicKey); !ok {
		t.Error("EC key type")
	}
	if _, ok := keys[2].key.(ed25519.PublicKey); !ok {
		t.Error("Ed25519 key type")
	}
	pemKeys, err := parseKeyDocument(append(pemPublic(&rsaKey.PublicKey), pemPublic(edPub)...), false)
	if err != nil || len(pemKeys) != 2 {
		t.Errorf("PEM: %d keys, %v", len(pemKeys), err)
	}
	bad := []struct {
		name, doc string
		secret    bool
	}{
		{"empty set", `{"keys":[]}`, false},
		{"oct from a URL", `{"kty":"oct","k":"` + b64([]byte(strings.Repeat("k", 32))) + `"}`, false},
		{"short oct", `{"kty":"oct","k":"c2hvcnQ"}`, true},
		{"private key material", `{"kty":"OKP","crv":"Ed25519","x":"` + b64(edPub) + `","d":"AAAA"}`, false},
		{"point off the curve", `{"kty":"EC","crv":"P-256","x":"` + b64(make([]byte, 32)) + `","y":"` + b64(make([]byte, 32)) + `"}`, false},
		{"short RSA", `{"kty":"RSA","n":"` + b64(make([]byte, 128)) + `","e":"AQAB"}`, false},
		{"alg does not fit kty", `{"kty":"OKP","crv":"Ed25519","alg":"HS256","x":"` + b64(edPub) + `"}`, false},
		{"unknown kty", `{"kty":"XYZ"}`, false},
		{"private PEM", "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n", false},
		{"neither", "hello", false},
		{"huge", "{" + strings.Repeat(" ", maxKeyDocSize) + "}", false},
	}
	for _, tc := range bad {
		if keys, err := parseKeyDocument([]byte(tc.doc), tc.secret); err == nil {
			t.Errorf("%s: accepted %d keys", tc.name, len(keys))
		}
	}
}

func TestNoDowngrade(t *testing.T) {
	mk := func(s string) *http.Request { u, _ := url.Parse(s); return &http.Request{URL: u} }
	if err := noDowngrade(mk("http://idp.example/jwks"), []*http.Request{mk("https://idp.example/jwks")}); err == nil {
		t.Error("https → http redirect followed")
	}
	if err := noDowngrade(mk("https://cdn.example/jwks"), []*http.Request{mk("https://idp.example/jwks")}); err != nil {
		t.Errorf("https → https redirect refused: %v", err)
	}
}

func FuzzParseKeyDocument(f *testing.F) {
	testKeys()
	f.Add(jwksDoc(rsaJWK("r", &rsaKey.PublicKey), edJWK("d", edPub)), false)
	f.Add([]byte(`{"kty":"oct","k":"`+b64([]byte(strings.Repeat("k", 32)))+`"}`), true)
	f.Add(pemPublic(&ecKey.PublicKey), false)
	f.Fuzz(func(t *testing.T, doc []byte, secret bool) {
		keys, err := parseKeyDocument(doc, secret)
		if err != nil {
			return
		}
		for _, k := range keys {
			if k.family() == "" {
				t.Fatalf("key of unknown family %T accepted", k.key)
			}
			if k.family() == "HS" && !secret {
				t.Fatal("symmetric key accepted where secrets are not allowed")
			}
		}
	})
}
