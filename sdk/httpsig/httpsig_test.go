package httpsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// RFC 9421 Appendix B.1.4: the Ed25519 test key.
const rfcEd25519Private = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----`

const rfcEd25519Public = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----`

func rfcKeys(t testing.TB) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	b, _ := pem.Decode([]byte(rfcEd25519Private))
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := pem.Decode([]byte(rfcEd25519Public))
	pk, err := x509.ParsePKIXPublicKey(pb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(ed25519.PrivateKey), pk.(ed25519.PublicKey)
}

// rfcRequest is the test-request message of RFC 9421 Appendix B.2.
func rfcRequest(t testing.TB) (*http.Request, []byte) {
	t.Helper()
	body := []byte(`{"hello": "world"}`)
	r, err := http.NewRequest("POST", "http://example.com/foo?param=Value&Pet=dog", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Date", "Tue, 20 Apr 2021 02:07:55 GMT")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Digest", "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:")
	r.Header.Set("Content-Length", "18")
	return r, body
}

func TestRFC9421B26(t *testing.T) {
	priv, pub := rfcKeys(t)
	r, body := rfcRequest(t)
	comps := []string{"date", "@method", "@path", "@authority", "content-type", "content-length"}
	base, err := SignatureBase(r, comps, []Param{{"created", int64(1618884473)}, {"keyid", "test-key-ed25519"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@method": POST
"@path": /foo
"@authority": example.com
"content-type": application/json
"content-length": 18
"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
	if diff := cmp.Diff(want, base); diff != "" {
		t.Fatalf("signature base (-RFC +ours):\n%s", diff)
	}
	// Ed25519 is deterministic: our signature must be the RFC's byte for byte.
	const wantSig = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
	if got := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(base))); got != wantSig {
		t.Errorf("signature = %s, want %s", got, wantSig)
	}
	// And our verifier accepts the RFC's headers as published.
	r.Header.Set("Signature-Input", `sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`)
	r.Header.Set("Signature", "sig-b26=:"+wantSig+":")
	res, err := Verify(r, body, VerifyOptions{
		Required: comps, Now: time.Unix(1618884473, 0).Add(10 * time.Second),
		MaxAge: time.Minute, MaxSkew: time.Second,
	}, func(id string) (ed25519.PublicKey, error) {
		if id != "test-key-ed25519" {
			return nil, ErrUnknownKey
		}
		return pub, nil
	})
	if err != nil {
		t.Fatalf("verify RFC example: %v", err)
	}
	if res.KeyID != "test-key-ed25519" || res.Label != "sig-b26" {
		t.Errorf("result = %+v", res)
	}
}

func TestContentDigestRFC9530(t *testing.T) {
	// RFC 9530 §B.2: {"hello": "world"} with sha-256 and sha-512.
	body := []byte(`{"hello": "world"}`)
	if got, want := ContentDigest(body), "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"; got != want {
		t.Errorf("ContentDigest = %s, want %s", got, want)
	}
	both := "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
	if err := VerifyContentDigest(both, body); err != nil {
		t.Errorf("verify both: %v", err)
	}
	for _, tc := range []struct {
		name, field string
		body        []byte
		want        error
	}{
		{"other body", both, []byte(`{"hello": "world!"}`), ErrDigestMismatch},
		{"only sha-512", "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:", body, ErrDigestMismatch},
		{"empty", "", body, ErrDigestMismatch},
		{"not bytes", `sha-256="abc"`, body, ErrMalformed},
		{"garbage", "sha-256=:!!!:", body, ErrMalformed},
	} {
		if err := VerifyContentDigest(tc.field, tc.body); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

type fixture struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	now  time.Time
}

func newFixture(t testing.TB) *fixture {
	priv, pub := rfcKeys(t)
	return &fixture{priv: priv, pub: pub, now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
}

func (f *fixture) signed(t testing.TB, method, url string, body []byte) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	s := &Signer{KeyID: "k1", Key: f.priv, Now: func() time.Time { return f.now }}
	if err := s.Sign(r, body); err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) verify(r *http.Request, body []byte, at time.Time) (*Result, error) {
	return Verify(r, body, VerifyOptions{Now: at, MaxAge: 5 * time.Minute, MaxSkew: 30 * time.Second, RequireNonce: true},
		func(id string) (ed25519.PublicKey, error) {
			if id != "k1" {
				return nil, fmt.Errorf("%w: %q", ErrUnknownKey, id)
			}
			return f.pub, nil
		})
}

func TestSignVerify(t *testing.T) {
	f := newFixture(t)
	body := []byte(`{"tool":"fetch_sales_data","params":{"region":"eu"}}`)
	const url = "https://gate.example/v1/decide?x=1"
	tests := []struct {
		name   string
		mutate func(r *http.Request) []byte
		at     time.Time
		want   error
	}{
		{"ok", func(r *http.Request) []byte { return body }, f.now.Add(time.Second), nil},
		{"tampered body", func(r *http.Request) []byte { return []byte(`{"tool":"delete_file"}`) }, f.now, ErrDigestMismatch},
		{"tampered digest and body", func(r *http.Request) []byte {
			b := []byte(`{"tool":"delete_file"}`)
			r.Header.Set("Content-Digest", ContentDigest(b))
			return b
		}, f.now, ErrBadSignature},
		{"tampered method", func(r *http.Request) []byte { r.Method = "PUT"; return body }, f.now, ErrBadSignature},
		{"tampered path", func(r *http.Request) []byte { r.URL.Path = "/v1/outcome"; return body }, f.now, ErrBadSignature},
		{"tampered query", func(r *http.Request) []byte { r.URL.RawQuery = "x=2"; return body }, f.now, ErrBadSignature},
		{"tampered authority", func(r *http.Request) []byte { r.Host = "evil.example"; return body }, f.now, ErrBadSignature},
		{"stale", func(r *http.Request) []byte { return body }, f.now.Add(5*time.Minute + time.Second), ErrStale},
		{"from the future", func(r *http.Request) []byte { return body }, f.now.Add(-31 * time.Second), ErrStale},
		{"no signature", func(r *http.Request) []byte { r.Header.Del("Signature"); r.Header.Del("Signature-Input"); return body }, f.now, ErrNoSignature},
		{"signature without input", func(r *http.Request) []byte { r.Header.Del("Signature-Input"); return body }, f.now, ErrNoSignature},
		{"garbage input", func(r *http.Request) []byte { r.Header.Set("Signature-Input", "sig=(((("); return body }, f.now, ErrMalformed},
		{"unknown key", func(r *http.Request) []byte {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), `keyid="k1"`, `keyid="k2"`, 1))
			return body
		}, f.now, ErrUnknownKey},
		{"alg rsa", func(r *http.Request) []byte {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), `alg="ed25519"`, `alg="rsa-pss-sha512"`, 1))
			return body
		}, f.now, ErrUnsupportedAlg},
		{"component dropped", func(r *http.Request) []byte {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), ` "@path"`, ``, 1))
			return body
		}, f.now, ErrMissingComponent},
		{"nonce dropped", func(r *http.Request) []byte {
			in := r.Header.Get("Signature-Input")
			i := strings.Index(in, ";nonce=")
			j := strings.Index(in, ";alg=")
			r.Header.Set("Signature-Input", in[:i]+in[j:])
			return body
		}, f.now, ErrMissingParameter},
		{"two labels", func(r *http.Request) []byte {
			in := r.Header.Get("Signature-Input")
			r.Header.Set("Signature-Input", in+", "+strings.Replace(in, "sig=", "other=", 1))
			return body
		}, f.now, ErrAmbiguousLabel},
		{"duplicate label", func(r *http.Request) []byte {
			r.Header.Add("Signature", r.Header.Get("Signature"))
			return body
		}, f.now, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.signed(t, "POST", url, body)
			b := tc.mutate(r)
			res, err := f.verify(r, b, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil {
				if diff := cmp.Diff(DefaultComponents, res.Components); diff != "" {
					t.Errorf("components: %s", diff)
				}
				if res.KeyID != "k1" || res.Nonce == "" || !res.Created.Equal(f.now) {
					t.Errorf("result = %+v", res)
				}
			}
		})
	}
}

func TestNoncesDiffer(t *testing.T) {
	f := newFixture(t)
	a := f.signed(t, "GET", "https://gate.example/x", nil)
	b := f.signed(t, "GET", "https://gate.example/x", nil)
	if a.Header.Get("Signature") == b.Header.Get("Signature") {
		t.Error("two signatures of the same request are identical: the nonce is not fresh")
	}
}

func TestSignerErrors(t *testing.T) {
	r, _ := http.NewRequest("GET", "https://x/", nil)
	if err := (&Signer{KeyID: "k"}).Sign(r, nil); err == nil {
		t.Error("signing without a key succeeded")
	}
	f := newFixture(t)
	if err := (&Signer{Key: f.priv}).Sign(r, nil); err == nil {
		t.Error("signing without a key id succeeded")
	}
	if err := (&Signer{KeyID: "k", Key: f.priv, Components: []string{"x-missing"}}).Sign(r, nil); !errors.Is(err, ErrMissingComponent) {
		t.Errorf("covering an absent header: err = %v", err)
	}
}

func TestParseDictionary(t *testing.T) {
	got, err := parseDictionary(`a=("x" "@y");created=1;keyid="k\"q", b=:AQI=:, c, d=?0;p=tok`)
	if err != nil {
		t.Fatal(err)
	}
	want := []member{
		{Key: "a", IsList: true, List: []string{"x", "@y"}, Params: []param{{"created", int64(1)}, {"keyid", `k"q`}}},
		{Key: "b", Item: []byte{1, 2}},
		{Key: "c", Item: true},
		{Key: "d", Item: false, Params: []param{{"p", token("tok")}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{`A=1`, `a=1,`, `a=("x";sf)`, `a=(1)`, `a="unterminated`, `a=1, a=2`, `a=1.5`, `a=:abc`, "a=\"\x01\"", `a=("x"`, `a=1;b;b`, `a=1 b=2`} {
		if _, err := parseDictionary(bad); err == nil {
			t.Errorf("parseDictionary(%q) accepted malformed input", bad)
		}
	}
	if _, err := parseDictionary("a=" + strings.Repeat("1", maxFieldLen)); err == nil {
		t.Error("oversized field accepted")
	}
}

func FuzzParseDictionary(f *testing.F) {
	for _, s := range []string{`sig=("@method" "@path");created=1618884473;keyid="test"`, `sha-256=:AAAA:`, `a, b=?1;c=-5`, `x=(`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := parseDictionary(s)
		if err != nil {
			return
		}
		// Whatever parses must re-serialise and parse back to the same inner lists.
		for _, m := range ms {
			if !m.IsList {
				continue
			}
			var b strings.Builder
			if err := serializeInnerList(&b, m.List, m.Params); err != nil {
				t.Fatalf("serialise %+v: %v", m, err)
			}
			back, err := parseDictionary("x=" + b.String())
			if err != nil {
				t.Fatalf("re-parse %q: %v", b.String(), err)
			}
			if diff := cmp.Diff(m.List, back[0].List); diff != "" {
				t.Fatalf("round trip: %s", diff)
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	r := fx.signed(f, "POST", "https://gate.example/v1/decide", []byte(`{}`))
	f.Add(r.Header.Get("Signature-Input"), r.Header.Get("Signature"), r.Header.Get("Content-Digest"), []byte(`{}`))
	f.Add(`sig=();created=0;keyid=""`, `sig=::`, ``, []byte(nil))
	f.Fuzz(func(t *testing.T, input, sig, digest string, body []byte) {
		req, _ := http.NewRequest("POST", "https://gate.example/v1/decide", nil)
		req.Header.Set("Signature-Input", input)
		req.Header.Set("Signature", sig)
		req.Header.Set("Content-Digest", digest)
		res, err := fx.verify(req, body, fx.now)
		if err == nil && (res.KeyID != "k1" || res.Nonce == "") {
			t.Fatalf("accepted a signature without the required key and nonce: %+v", res)
		}
	})
}

func TestKeys(t *testing.T) {
	priv, text, pub, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePrivateKey(text)
	if err != nil || !back.Equal(priv) {
		t.Fatalf("round trip: %v", err)
	}
	if base64.StdEncoding.EncodeToString(back.Public().(ed25519.PublicKey)) != pub {
		t.Error("public key does not match")
	}
	rfc, _ := rfcKeys(t)
	fromPEM, err := ParsePrivateKey(rfcEd25519Private)
	if err != nil || !fromPEM.Equal(rfc) {
		t.Errorf("PEM: %v", err)
	}
	for _, bad := range []string{"", "AAAA", "!!", rfcEd25519Public} {
		if _, err := ParsePrivateKey(bad); err == nil {
			t.Errorf("ParsePrivateKey(%q) succeeded", bad)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	f := newFixture(b)
	body := bytes.Repeat([]byte("x"), 1024)
	s := &Signer{KeyID: "k1", Key: f.priv}
	r, _ := http.NewRequest("POST", "https://gate.example/v1/decide", nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Sign(r, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	body := bytes.Repeat([]byte("x"), 1024)
	r := f.signed(b, "POST", "https://gate.example/v1/decide", body)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.verify(r, body, f.now); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAuthorityNormalised(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"Example.COM", "example.com"},
		{"example.com:443", "example.com"},
		{"example.com:80", "example.com"},
		{"example.com:8443", "example.com:8443"},
		{"[2001:db8::80]", "[2001:db8::80]"},
		{"[2001:db8::1]:443", "[2001:db8::1]"},
	} {
		r := &http.Request{Host: tc.host}
		if got := authority(r); got != tc.want {
			t.Errorf("authority(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
}
