package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/console"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/server"
)

// consoleClient signs in to g's console and reads its pages with the session cookie.
type consoleClient struct {
	t     *testing.T
	base  string
	token string
	c     *http.Client
}

func newConsoleClient(t *testing.T, base string) *consoleClient {
	return &consoleClient{t: t, base: base, c: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request with the session cookie and returns the status, Location and body.
func (cc *consoleClient) do(method, path string, form url.Values) (int, string, string) {
	cc.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, cc.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cc.token != "" {
		req.AddCookie(&http.Cookie{Name: "portcullis_console", Value: cc.token})
	}
	resp, err := cc.c.Do(req)
	if err != nil {
		cc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == "portcullis_console" && c.Value != "" {
			cc.token = c.Value
		}
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// With store.console on Redis, the session is checked again on every request through its grant
// (a revoked approver key ends it and removes it from the store), a session written into the
// store by anyone but a replica signs nobody in, and a store that does not answer refuses with
// 503 — the queue, a sign-in, a sign-out — never a signed-in page.
func TestConsoleSessionStoreFailsClosed(t *testing.T) {
	raddr := os.Getenv("PORTCULLIS_TEST_REDIS")
	if raddr == "" {
		t.Skip("PORTCULLIS_TEST_REDIS is not set: no Redis to test against (e.g. PORTCULLIS_TEST_REDIS=127.0.0.1:6379)")
	}
	// Run last: the Redis client's dial probe, started by a failed dial, sleeps a second before
	// it sees its pool closed.
	t.Cleanup(func() { time.Sleep(1500 * time.Millisecond) })
	proxy := newTCPProxy(t, raddr)
	t.Setenv("PCL_TEST_REDIS_URL", "redis://"+proxy.addr()+"/0")
	g := newGatewayWith(t, func(c *config.Config) {
		c.Store.Console = config.StoreRedis
		c.Store.Redis = config.RedisConfig{URLEnv: "PCL_TEST_REDIS_URL", Prefix: "pcl:test:consolesess:" + time.Now().Format("150405.000000000") + ":"}
		c.Approvals.Approvers = []config.ApproverConfig{{ID: "alice", Scopes: allScopes}}
	})
	if g.app.stores.console == nil {
		t.Fatal("store.console: redis opened no session store")
	}
	ks, err := identity.OpenFileKeyStore(filepath.Join(g.dir, ApproverKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	key, rec, err := identity.CreateAPIKey(t.Context(), ks, "alice", "test", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	cc := newConsoleClient(t, g.srv.URL)
	if status, loc, body := cc.do("POST", "/console/login", url.Values{"key": {key}}); status != http.StatusSeeOther || cc.token == "" {
		t.Fatalf("sign-in: %d %s %.200s", status, loc, body)
	}
	if status, _, body := cc.do("GET", "/console/approvals", nil); status != http.StatusOK || !strings.Contains(body, `id="principal">alice<`) {
		t.Fatalf("queue: %d %.300s", status, body)
	}

	// The key revoked: the next request finds the grant refused, ends the session everywhere.
	if err := ks.Revoke(t.Context(), rec.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if status, loc, _ := cc.do("GET", "/console/approvals", nil); status != http.StatusSeeOther || loc != "/console/login" {
		t.Fatalf("queue after the key was revoked: %d %s, want a redirect to sign in", status, loc)
	}
	if data, err := g.app.stores.console.Touch(context.Background(), sha256.Sum256([]byte(cc.token)), time.Now(), 0); err != nil || data != nil {
		t.Fatalf("the revoked key's session is still stored: %q, %v", data, err)
	}

	key2, _, err := identity.CreateAPIKey(t.Context(), ks, "alice", "test", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if status, _, _ := cc.do("POST", "/console/login", url.Values{"key": {key2}}); status != http.StatusSeeOther {
		t.Fatalf("sign-in with a new key: %d", status)
	}
	status, _, body := cc.do("GET", "/console/approvals", nil)
	if status != http.StatusOK {
		t.Fatalf("queue: %d", status)
	}

	// Someone who can write the store but has no replica's data directory: alice's stored
	// session copied under a token of their own, or a session made up from scratch, signs
	// nobody in. It is left in the store: a replica cannot tell it from a session another
	// replica's hash key sealed, which it must not end; the store's deadlines collect it.
	st, now := g.app.stores.console, time.Now()
	stored, err := st.Touch(t.Context(), sha256.Sum256([]byte(cc.token)), now, 0)
	if err != nil || stored == nil {
		t.Fatalf("alice's stored session: %q, %v", stored, err)
	}
	made := stored[sha256.Size:] // the data without its MAC
	for name, data := range map[string][]byte{"alice's session copied": stored, "a session made up": made} {
		forger := newConsoleClient(t, g.srv.URL)
		forger.token = "forged-" + strings.ReplaceAll(name, " ", "-")
		if ok, err := st.Create(t.Context(), sha256.Sum256([]byte(forger.token)), data, now, now.Add(time.Hour), now.Add(time.Hour), 100); err != nil || !ok {
			t.Fatalf("planting %s: %v %v", name, ok, err)
		}
		if status, loc, _ := forger.do("GET", "/console/approvals", nil); status != http.StatusSeeOther || loc != "/console/login" {
			t.Errorf("%s under another token: %d %s, want a redirect to sign in", name, status, loc)
		}
		if left, err := st.Touch(t.Context(), sha256.Sum256([]byte(forger.token)), now, 0); err != nil || !bytes.Equal(left, data) {
			t.Errorf("%s was changed or removed by a replica that could not verify it: %v", name, err)
		}
	}
	csrf := body[strings.Index(body, `name="csrf" value="`)+len(`name="csrf" value="`):]
	csrf = csrf[:strings.IndexByte(csrf, '"')]

	// Redis gone: nothing signed in is served.
	proxy.stop()
	for _, tc := range []struct {
		method, path string
		form         url.Values
	}{
		{"GET", "/console/approvals", nil},
		{"GET", "/console/audit", nil},
		{"GET", "/console/approvals/events", nil},
		{"POST", "/console/logout", url.Values{"csrf": {csrf}}},
		{"POST", "/console/login", url.Values{"key": {key2}}},
	} {
		before := cc.token
		status, _, body := cc.do(tc.method, tc.path, tc.form)
		if status != http.StatusServiceUnavailable || strings.Contains(body, `id="principal"`) {
			t.Errorf("%s %s with the session store down: %d %.200s, want 503", tc.method, tc.path, status, body)
		}
		if cc.token != before {
			t.Errorf("%s %s with the session store down set a new session cookie", tc.method, tc.path)
		}
	}
}

// A sign-in with an approvals issuer's token keeps its issuer, subject and expiry — not the
// token — and is refused again once the token has expired, its issuer is no longer trusted, or
// its subject is no longer declared under it.
func TestConsoleGrantOfALoginToken(t *testing.T) {
	idp := newTestIdP(t, "https://login.example.com/")
	g := newGatewayWith(t, func(c *config.Config) {
		c.Approvals.Logins.Issuers = []identity.IssuerConfig{{Issuer: idp.iss, Algorithms: []string{"EdDSA"}, KeyFiles: []string{idp.keyFile}}}
		c.Approvals.Approvers = []config.ApproverConfig{{ID: "alice@example.com", Issuer: idp.iss, Scopes: allScopes}}
	})
	tok := idp.token(t, "alice@example.com", identity.DefaultApproverAudience)
	p, gr, err := g.app.approvers.ConsoleGrant(t.Context(), tok)
	if err != nil || p.Approver.ID != idp.iss+"#alice@example.com" {
		t.Fatalf("ConsoleGrant: %+v, %v", p, err)
	}
	if gr.KeyID != "" || gr.Issuer != idp.iss || gr.Subject != "alice@example.com" || gr.Until.IsZero() || gr.Until.After(time.Now().Add(11*time.Minute)) {
		t.Fatalf("grant of a login token: %+v", gr)
	}
	if again, err := g.app.approvers.ConsoleGrantPrincipal(t.Context(), gr, time.Now()); err != nil || again.Approver.ID != p.Approver.ID || again.Role != p.Role {
		t.Fatalf("grant checked again: %+v, %v", again, err)
	}
	if _, err := g.app.approvers.ConsoleGrantPrincipal(t.Context(), gr, gr.Until); err == nil {
		t.Error("a grant was accepted at its token's expiry")
	}
	for name, bad := range map[string]func(*struct{ iss, sub string }){
		"another issuer":   func(x *struct{ iss, sub string }) { x.iss = "https://partner.example.com/" },
		"another subject":  func(x *struct{ iss, sub string }) { x.sub = "mallory@example.com" },
		"no subject":       func(x *struct{ iss, sub string }) { x.sub = "" },
		"a subject folded": func(x *struct{ iss, sub string }) { x.sub = "Alice@example.com" },
	} {
		x := struct{ iss, sub string }{gr.Issuer, gr.Subject}
		bad(&x)
		g2 := gr
		g2.Issuer, g2.Subject = x.iss, x.sub
		if _, err := g.app.approvers.ConsoleGrantPrincipal(t.Context(), g2, time.Now()); err == nil {
			t.Errorf("%s: a grant was accepted", name)
		}
	}
}

// A replica whose approver key store does not hold a signed-in person's key (its copy of the
// key file not yet updated, or another file) cannot check the session: it refuses the request
// there and leaves the shared session to the replicas that know the key — it does not sign the
// person out of all of them. A revoked key (the record kept, marked revoked) still ends it.
func TestConsoleSessionOfAKeyUnknownHereIsLeftInPlace(t *testing.T) {
	raddr := os.Getenv("PORTCULLIS_TEST_REDIS")
	if raddr == "" {
		t.Skip("PORTCULLIS_TEST_REDIS is not set: no Redis to test against (e.g. PORTCULLIS_TEST_REDIS=127.0.0.1:6379)")
	}
	t.Setenv("PCL_TEST_REDIS_URL", "redis://"+raddr+"/0")
	g := newGatewayWith(t, func(c *config.Config) {
		c.Store.Console = config.StoreRedis
		c.Store.Redis = config.RedisConfig{URLEnv: "PCL_TEST_REDIS_URL", Prefix: "pcl:test:consoleunknown:" + time.Now().Format("150405.000000000") + ":"}
		c.Approvals.Approvers = []config.ApproverConfig{{ID: "alice", Scopes: allScopes}}
	})
	path := filepath.Join(g.dir, ApproverKeysFile)
	ks, err := identity.OpenFileKeyStore(path)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := identity.CreateAPIKey(t.Context(), ks, "alice", "test", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	cc := newConsoleClient(t, g.srv.URL)
	if status, loc, body := cc.do("POST", "/console/login", url.Values{"key": {key}}); status != http.StatusSeeOther || cc.token == "" {
		t.Fatalf("sign-in: %d %s %.200s", status, loc, body)
	}
	stored := func() []byte {
		t.Helper()
		data, err := g.app.stores.console.Touch(t.Context(), sha256.Sum256([]byte(cc.token)), time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}

	// This replica's key file loses the key: what a replica whose copy lacks it sees.
	known, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeKeyFile(t, path, []byte(`{"version": 1, "keys": []}`))
	if status, loc, _ := cc.do("GET", "/console/approvals", nil); status != http.StatusSeeOther || loc != "/console/login" {
		t.Fatalf("queue where the key is unknown: %d %s, want a redirect to sign in", status, loc)
	}
	if stored() == nil {
		t.Fatal("a replica that does not know the key ended the shared session for every replica")
	}
	resp, err := http.Get(g.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "portcullis_console_sessions_refused_total 1") {
		t.Error("the refusal is not counted in portcullis_console_sessions_refused_total")
	}
	// The key known again (the replicas that hold it): the same session serves.
	writeKeyFile(t, path, known)
	if status, _, body := cc.do("GET", "/console/approvals", nil); status != http.StatusOK || !strings.Contains(body, `id="principal">alice<`) {
		t.Fatalf("queue where the key is known: %d %.300s", status, body)
	}
}

// writeKeyFile replaces the key file at path whole, as an operator's copy would.
func writeKeyFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// The check behind a shared console session, without a store: a key this replica's key file does
// not hold (or a key file it cannot read) is console.ErrNotHere — the request is refused here and
// the session left to the replicas that hold the key — while a key revoked, or an owner no longer
// declared, is a refusal of the session itself, which ends it everywhere.
func TestConsoleGrantOfAKeyUnknownHereIsNotHere(t *testing.T) {
	path := filepath.Join(t.TempDir(), ApproverKeysFile)
	ks, err := identity.OpenFileKeyStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	rt := &atomic.Pointer[runtimeState]{}
	rt.Store(&runtimeState{approvers: map[string]config.ApproverConfig{"alice": {ID: "alice", Scopes: allScopes}}})
	a := &approvers{keys: ks, rt: rt}
	now := time.Now()
	_, rec, err := identity.CreateAPIKey(t.Context(), ks, "alice", "test", now, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, bob, err := identity.CreateAPIKey(t.Context(), ks, "bob", "test", now, 0)
	if err != nil {
		t.Fatal(err)
	}
	check := func(keyID string) error {
		t.Helper()
		p, err := a.ConsoleGrantPrincipal(t.Context(), console.Grant{KeyID: keyID}, now)
		if err == nil && p.Approver.Name != "alice" {
			t.Fatalf("key %s signed in %+v, want alice", keyID, p.Approver)
		}
		if err != nil && !errors.Is(err, server.ErrNotApprover) {
			t.Errorf("key %s: %v is not a refusal of the approver", keyID, err)
		}
		return err
	}
	if err := check(rec.ID); err != nil {
		t.Fatalf("the key held here: %v", err)
	}
	if err := check("pk_missing"); !errors.Is(err, console.ErrNotHere) {
		t.Errorf("a key this replica does not hold: %v, want console.ErrNotHere", err)
	}
	if err := check(bob.ID); err == nil || errors.Is(err, console.ErrNotHere) {
		t.Errorf("a key whose owner is not declared: %v, want a refusal that ends the session", err)
	}

	known, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeKeyFile(t, path, []byte(`{"version": 1, "keys": [`))
	if err := check(rec.ID); !errors.Is(err, console.ErrNotHere) {
		t.Errorf("a key file that cannot be read: %v, want console.ErrNotHere", err)
	}
	writeKeyFile(t, path, known)

	if err := ks.Revoke(t.Context(), rec.ID, now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := check(rec.ID); err == nil || errors.Is(err, console.ErrNotHere) {
		t.Errorf("a revoked key: %v, want a refusal that ends the session", err)
	}
}
