package identity

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A jwks_url is parsed, not prefix-matched: userinfo and look-alike hosts cannot smuggle a
// remote key server past the "plain http only on loopback" rule.
func TestJWKSURLValidation(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://idp.example/jwks", true},
		{"https://idp.example:8443/.well-known/jwks.json", true},
		{"http://127.0.0.1/jwks", true},
		{"http://127.0.0.1:8080/jwks", true},
		{"http://127.9.9.9/jwks", true},
		{"http://[::1]:8080/jwks", true},
		{"http://localhost:8080/jwks", true},
		{"http://127.0.0.1@evil.example/jwks", false},
		{"http://localhost@evil.example/jwks", false},
		{"http://localhost.evil.example/jwks", false},
		{"http://127.0.0.1.evil.example/jwks", false},
		{"http://127.0.0.1:80@evil.example/jwks", false},
		{"https://user:pass@idp.example/jwks", false},
		{"http://evil.example/jwks", false},
		{"http://10.0.0.1/jwks", false},
		{"http://[::ffff:10.0.0.1]/jwks", false},
		{"ftp://idp.example/jwks", false},
		{"https:///jwks", false},
		{"https:idp.example/jwks", false},
		{"//idp.example/jwks", false},
		{"http://localhost%2eevil.example/jwks", false},
		{"https://idp.example/jwks\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			c := Config{JWTIssuers: []IssuerConfig{{Issuer: "i", Audiences: []string{"x"}, Algorithms: []string{"RS256"}, JWKSURL: tc.url}}}
			err := c.Validate()
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok {
				if err == nil {
					t.Fatal("accepted")
				}
				if !strings.Contains(err.Error(), "jwt_issuers[0].jwks_url") {
					t.Errorf("problem not reported at jwks_url: %v", err)
				}
			}
		})
	}
}

// A JWKS server that redirects to plain http is not followed, whether the configured URL is
// https or loopback http; an https → https redirect still works. The verifier enforces this
// even on an http.Client supplied without a CheckRedirect.
func TestJWKSRedirects(t *testing.T) {
	testKeys()
	doc := jwksDoc(rsaJWK("rsa-1", &rsaKey.PublicKey))
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(doc) }))
	defer plain.Close()
	tlsKeys := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(doc) }))
	defer tlsKeys.Close()
	toPlain := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/jwks", http.StatusFound))
	defer toPlain.Close()
	toTLS := httptest.NewTLSServer(http.RedirectHandler(tlsKeys.URL+"/jwks", http.StatusFound))
	defer toTLS.Close()
	loopbackToPlain := httptest.NewServer(http.RedirectHandler(plain.URL+"/other", http.StatusFound))
	defer loopbackToPlain.Close()

	// One client trusting the test servers' certificate (all httptest TLS servers share it),
	// deliberately without CheckRedirect.
	client := &http.Client{Transport: tlsKeys.Client().Transport}
	tests := []struct {
		name, url string
		ok        bool
	}{
		{"https direct", tlsKeys.URL + "/jwks", true},
		{"https to https", toTLS.URL + "/jwks", true},
		{"https to http", toPlain.URL + "/jwks", false},
		{"loopback http to http", loopbackToPlain.URL + "/jwks", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: time.Now()}
			v, err := New(Config{
				Agents:     []AgentConfig{{ID: "report-generator"}},
				JWTIssuers: []IssuerConfig{{Issuer: agentIss, Audiences: []string{aud}, Algorithms: []string{"RS256"}, JWKSURL: tc.url}},
			}, Options{HTTPClient: client, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			tok := sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", claimsFor("report-generator", agentIss, aud, clk.Now()))
			a, err := v.Verify(bg, Credentials{BearerToken: tok})
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %s with keys fetched through a redirect to plain http", a.ID)
			}
			mustCode(t, err, "identity_unavailable")
		})
	}
}

// RFC 7515 §4.1.11: a token whose crit header lists extensions the verifier does not understand
// must be refused; Portcullis understands none. And a token may not live longer than the issuer's
// max_lifetime.
func TestJWTCritAndLifetime(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.JWTIssuers[0].MaxLifetime = 2 * time.Hour })
	now := e.clk.Now()
	good := claimsFor("report-generator", agentIss, aud, now)
	with := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range good {
			c[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	hdr := func(kv ...any) map[string]any {
		h := map[string]any{"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i].(string)] = kv[i+1]
		}
		return h
	}
	century := now.AddDate(100, 0, 0).Unix()
	tests := []struct {
		name  string
		token string
		code  string
	}{
		{"plain", forge(hdr(), good, rs256(rsaKey)), ""},
		{"crit unknown extension", forge(hdr("crit", []any{"exp-ext"}, "exp-ext", true), good, rs256(rsaKey)), "credential_invalid"},
		{"crit b64", forge(hdr("crit", []any{"b64"}, "b64", false), good, rs256(rsaKey)), "credential_invalid"},
		{"crit empty list", forge(hdr("crit", []any{}), good, rs256(rsaKey)), "credential_malformed"},
		{"crit not a list", forge(hdr("crit", "exp-ext"), good, rs256(rsaKey)), "credential_malformed"},
		{"crit null", forge(hdr("crit", nil), good, rs256(rsaKey)), "credential_malformed"},
		{"crit list of numbers", forge(hdr("crit", []any{1}), good, rs256(rsaKey)), "credential_malformed"},
		{"lifetime at the maximum", forge(hdr(), with("exp", now.Add(2*time.Hour).Unix()), rs256(rsaKey)), ""},
		{"lifetime over the maximum", forge(hdr(), with("exp", now.Add(2*time.Hour+time.Second).Unix()), rs256(rsaKey)), "credential_lifetime_exceeded"},
		{"exp a century away", forge(hdr(), with("exp", century), rs256(rsaKey)), "credential_lifetime_exceeded"},
		{"old iat, exp soon", forge(hdr(), with("iat", now.Add(-3*time.Hour).Unix(), "exp", now.Add(time.Minute).Unix()), rs256(rsaKey)), "credential_lifetime_exceeded"},
		{"no iat, exp within maximum", forge(hdr(), with("iat", nil, "exp", now.Add(time.Hour).Unix()), rs256(rsaKey)), ""},
		{"no iat, exp a century away", forge(hdr(), with("iat", nil, "exp", century), rs256(rsaKey)), "credential_lifetime_exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := e.v.Verify(bg, Credentials{BearerToken: tc.token})
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %s", a.ID)
			}
			mustCode(t, err, tc.code)
		})
	}
}

// The default maximum lifetime applies when the issuer does not set one; the user-token path
// goes through the same checks.
func TestJWTDefaultMaxLifetimeAndUsers(t *testing.T) {
	e := newEnv(t, nil)
	now := e.clk.Now()
	long := claimsFor("report-generator", agentIss, aud, now)
	long["exp"] = now.Add(DefaultMaxLifetime + time.Minute).Unix()
	_, err := e.v.Verify(bg, Credentials{BearerToken: sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", long)})
	mustCode(t, err, "credential_lifetime_exceeded")
	day := claimsFor("report-generator", agentIss, aud, now)
	day["exp"] = now.Add(DefaultMaxLifetime).Unix()
	if _, err := e.v.Verify(bg, Credentials{BearerToken: sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", day)}); err != nil {
		t.Fatalf("a token of exactly the default maximum lifetime refused: %v", err)
	}

	agent, _ := e.v.Agent("report-generator")
	uc := claimsFor("alice", userIss, aud, now)
	uc["exp"] = now.AddDate(100, 0, 0).Unix()
	_, err = e.v.User(bg, &agent, sign(jwt.SigningMethodRS256, rsaKey2, "", uc), nil)
	if err == nil {
		t.Fatal("user token valid for a century accepted")
	}
	crit := forge(map[string]any{"alg": "RS256", "crit": []any{"x"}, "x": 1}, claimsFor("alice", userIss, aud, now), rs256(rsaKey2))
	if _, err := e.v.User(bg, &agent, crit, nil); err == nil {
		t.Fatal("user token with crit accepted")
	}
}

func TestConfigValidateMaxLifetime(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, 30 * time.Second, 400 * 24 * time.Hour} {
		c := Config{JWTIssuers: []IssuerConfig{{Issuer: "i", Audiences: []string{"x"}, Algorithms: []string{"RS256"}, KeyFiles: []string{"f"}, MaxLifetime: d}}}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "jwt_issuers[0].max_lifetime") {
			t.Errorf("max_lifetime %s: %v", d, err)
		}
	}
}

func FuzzCheckJWKSURL(f *testing.F) {
	for _, s := range []string{"https://idp.example/jwks", "http://127.0.0.1@evil.example/jwks", "http://localhost.evil.example/jwks",
		"http://[::1]:80/", "http://127.0.0.1:8080/jwks", "https://u:p@h/", "http:opaque", "http://LOCALHOST/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := checkJWKSURL(s); err != nil {
			return
		}
		// Whatever is accepted is an absolute http(s) URL without userinfo, and plain http only
		// to a loopback host.
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("accepted unparsable %q", s)
		}
		if u.User != nil {
			t.Fatalf("accepted %q with userinfo", s)
		}
		switch u.Scheme {
		case "https":
		case "http":
			h := u.Hostname()
			if ip := net.ParseIP(h); !strings.EqualFold(h, "localhost") && (ip == nil || !ip.IsLoopback()) {
				t.Fatalf("accepted plain http to %q in %q", h, s)
			}
		default:
			t.Fatalf("accepted scheme %q in %q", u.Scheme, s)
		}
	})
}
