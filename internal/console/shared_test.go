package console

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/console/oidctest"
)

// grantAuth is fakeAuth whose grant is the credential's name: what the real one keeps is a key
// ID (internal/app tests it with a real key store).
type grantAuth struct{ *fakeAuth }

func (g grantAuth) ConsoleGrant(ctx context.Context, cred string) (Principal, Grant, error) {
	p, err := g.ConsolePrincipal(ctx, cred)
	return p, Grant{KeyID: "id-" + cred}, err
}

func (g grantAuth) ConsoleGrantPrincipal(ctx context.Context, gr Grant, _ time.Time) (Principal, error) {
	return g.ConsolePrincipal(ctx, gr.KeyID[len("id-"):])
}

// keptStore keeps sessions and never expires them itself — a store whose deadlines a replica
// with a longer session_ttl wrote — and fails every call while broken is set.
type keptStore struct {
	mu     sync.Mutex
	m      map[[sha256.Size]byte][]byte
	broken bool
}

func (k *keptStore) err() error {
	if k.broken {
		return errors.New("connection refused")
	}
	return nil
}

func (k *keptStore) Create(_ context.Context, key [sha256.Size]byte, data []byte, _, _, _ time.Time, _ int) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[key] = data
	return true, k.err()
}

func (k *keptStore) Touch(_ context.Context, key [sha256.Size]byte, _ time.Time, _ time.Duration) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.m[key], k.err()
}

func (k *keptStore) Delete(_ context.Context, key [sha256.Size]byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, key)
	return k.err()
}

// A shared session's absolute lifetime is counted by the reading replica from the sealed
// sign-in time, whatever the store's deadlines say; a store that fails answers 503.
func TestSharedSessionLifetimeAndFailure(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	st := &keptStore{m: map[[sha256.Size]byte][]byte{}}
	r := newRigWith(t, false, func(o *Options, _ string) {
		o.Auth = grantAuth{o.Auth.(*fakeAuth)}
		o.Sessions, o.SessionKey, o.Now = st, DeriveSessionKey([]byte("a ledger hash key of thirty-two bytes")), clock
		o.SessionTTL, o.IdleTimeout = time.Hour, time.Hour
	})
	c := r.signIn(keyAlice)
	if code, _, _ := r.get(c, "/console/approvals"); code != http.StatusOK {
		t.Fatalf("signed in: %d", code)
	}
	st.broken = true
	if code, body, _ := r.get(c, "/console/approvals"); code != http.StatusServiceUnavailable {
		t.Fatalf("store failing: %d %.200s", code, body)
	}
	st.broken = false
	advance(time.Hour)
	if code, _, hdr := r.get(c, "/console/approvals"); code != http.StatusSeeOther || hdr.Get("Location") != "/console/login" {
		t.Fatalf("at the session's absolute deadline, the store still holding it: %d %s", code, hdr.Get("Location"))
	}
	if len(st.m) != 0 {
		t.Fatal("the expired session was left in the store")
	}
}

// Behind replicas sharing sessions, the provider's redirect may reach another replica than the
// one that began the sign-in: that replica opens the flight cookie and signs the person in.
func TestOIDCCallbackAtAnotherReplica(t *testing.T) {
	p := newProvider(t)
	st := &keptStore{m: map[[sha256.Size]byte][]byte{}}
	key := DeriveSessionKey([]byte("a ledger hash key of thirty-two bytes"))
	auth := &fakeOIDCAuth{fakeAuth{m: map[string]Principal{"alice-sub": human("idp#alice-sub", "approver", all)}}}
	public := ""
	replica := func() *rig {
		return newRigWith(t, false, func(o *Options, base string) {
			if public == "" {
				public = base // both replicas are reached at one public address
			}
			o.Auth = grantAuth{o.Auth.(*fakeAuth)}
			o.Sessions, o.SessionKey = st, key
			o.OIDC = &OIDCOptions{Issuer: p.URL(), ClientID: oidctest.ClientID, ClientSecret: oidctest.ClientSecret,
				RedirectURL: public + "/console/oidc/callback", Auth: auth}
		})
	}
	a, b := replica(), replica()
	c := a.client()
	resp, err := c.Get(a.srv.URL + "/console/oidc/start")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp, err = c.Get(resp.Header.Get("Location")); err != nil { // the provider
		t.Fatal(err)
	}
	resp.Body.Close()
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || cb.Query().Get("code") == "" {
		t.Fatalf("the provider did not redirect back with a code: %s %v", resp.Header.Get("Location"), err)
	}
	// The load balancer sends the callback to the other replica.
	code, body, _ := b.get(c, cb.Path+"?"+cb.RawQuery)
	if code != http.StatusOK || !strings.Contains(body, `url=/console/approvals`) {
		t.Fatalf("callback at the other replica: %d\n%.300s", code, body)
	}
	if len(st.m) != 1 {
		t.Fatalf("%d sessions stored, want 1", len(st.m))
	}
}
