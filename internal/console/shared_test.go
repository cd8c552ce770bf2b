package console

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
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
	mu       sync.Mutex
	m        map[[sha256.Size]byte][]byte
	broken   bool
	extended int // Touch calls that moved an idle deadline
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

func (k *keptStore) Touch(_ context.Context, key [sha256.Size]byte, _ time.Time, idle time.Duration) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if idle > 0 && k.m[key] != nil {
		k.extended++
	}
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

// A replica whose hash key differs from the one that signed a person in (mid-rotation, or
// misconfigured) cannot verify the stored session: it treats the person as not signed in there,
// counts it, and leaves the row to the replicas that verify it — it must not sign them out of
// every replica.
func TestSharedSessionOfAnotherKeyIsLeftInPlace(t *testing.T) {
	st, a, b := twoKeys(t)
	c := a.signIn(keyAlice)
	refusedAndLeft(t, st, a, b, c, 3)
}

// twoKeys is a shared session store and two replicas of it with different hash keys.
func twoKeys(t *testing.T) (st *keptStore, a, b *rig) {
	st = &keptStore{m: map[[sha256.Size]byte][]byte{}}
	replica := func(hashKey string) *rig {
		return newRigWith(t, false, func(o *Options, _ string) {
			o.Auth = grantAuth{o.Auth.(*fakeAuth)}
			o.Sessions, o.SessionKey = st, DeriveSessionKey([]byte(hashKey))
		})
	}
	return st, replica("a ledger hash key of thirty-two bytes"), replica("another hash key, of thirty-two bytes")
}

// A replica that cannot verify a session does not move its idle deadline (requests there would
// keep a stolen or forgotten cookie alive however long it went unused where it is valid), and
// does not keep its holder from signing out there: the cookie proves whose the session is, and
// its CSRF token is derived from the cookie alone.
func TestRefusedSessionNotExtendedButSignsOut(t *testing.T) {
	st, a, b := twoKeys(t)
	c := a.signIn(keyAlice)
	csrf := a.csrf(c, "/console/approvals")
	c.Jar.SetCookies(mustURL(t, b.srv.URL+"/console/"), c.Jar.Cookies(mustURL(t, a.srv.URL+"/console/")))
	st.mu.Lock()
	st.extended = 0
	st.mu.Unlock()
	for range 3 {
		if code, _, _ := b.get(c, "/console/approvals"); code != http.StatusSeeOther {
			t.Fatalf("at the replica that cannot verify the session: %d, want a redirect to sign in", code)
		}
	}
	if st.extended != 0 {
		t.Errorf("the replica that refused the session moved its idle deadline %d times", st.extended)
	}
	if code, _, _ := a.get(c, "/console/approvals"); code != http.StatusOK || st.extended != 1 {
		t.Errorf("at the replica that verifies it: %d, idle deadline moved %d times, want 200 and once", code, st.extended)
	}

	// Signing out without the CSRF token is refused and ends nothing.
	resp := b.post(c, "/console/logout", url.Values{}, b.srv.URL)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(st.m) != 1 {
		t.Fatalf("sign-out without a CSRF token: %d, %d sessions stored; want 403 and the session kept", resp.StatusCode, len(st.m))
	}
	resp = b.post(c, "/console/logout", url.Values{"csrf": {csrf}}, b.srv.URL)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
		t.Fatalf("sign-out at the replica that cannot verify the session: %d %s, want a redirect to sign in", resp.StatusCode, resp.Header.Get("Location"))
	}
	if len(st.m) != 0 {
		t.Fatalf("%d sessions stored after their holder signed out, want 0", len(st.m))
	}
}

// A replica without OIDC configured cannot check an OIDC session again: it does not end it for
// the replicas that can.
func TestOIDCSessionAtAReplicaWithoutOIDC(t *testing.T) {
	p := newProvider(t)
	st := &keptStore{m: map[[sha256.Size]byte][]byte{}}
	key := DeriveSessionKey([]byte("a ledger hash key of thirty-two bytes"))
	auth := &fakeOIDCAuth{fakeAuth{m: map[string]Principal{"alice-sub": human("idp#alice-sub", "approver", all)}}}
	a := newRigWith(t, false, func(o *Options, base string) {
		o.Auth = grantAuth{o.Auth.(*fakeAuth)}
		o.Sessions, o.SessionKey = st, key
		o.OIDC = &OIDCOptions{Issuer: p.URL(), ClientID: oidctest.ClientID, ClientSecret: oidctest.ClientSecret,
			RedirectURL: base + "/console/oidc/callback", Auth: auth}
	})
	b := newRigWith(t, false, func(o *Options, _ string) {
		o.Auth = grantAuth{o.Auth.(*fakeAuth)}
		o.Sessions, o.SessionKey = st, key
	})
	c := a.client()
	resp, err := c.Get(a.srv.URL + "/console/oidc/start")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp, err = c.Get(resp.Header.Get("Location")); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	if resp, err = c.Get(cb); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, _, _ := a.get(c, "/console/approvals"); code != http.StatusOK {
		t.Fatalf("signed in through OIDC: %d", code)
	}
	refusedAndLeft(t, st, a, b, c, 1)
}

// refusedAndLeft checks that replica b, reached n times with the session c signed in at a,
// refuses it each time without ending it: the row stays, a still serves it, and b counts it.
func refusedAndLeft(t *testing.T, st *keptStore, a, b *rig, c *http.Client, n int) {
	t.Helper()
	// One public address: the cookie goes to both replicas.
	c.Jar.SetCookies(mustURL(t, b.srv.URL+"/console/"), c.Jar.Cookies(mustURL(t, a.srv.URL+"/console/")))
	for range n {
		if code, _, hdr := b.get(c, "/console/approvals"); code != http.StatusSeeOther || hdr.Get("Location") != "/console/login" {
			t.Fatalf("at the replica that cannot verify the session: %d %s, want a redirect to sign in", code, hdr.Get("Location"))
		}
	}
	if len(st.m) != 1 {
		t.Fatalf("%d sessions stored after a replica that cannot verify it read it, want 1 (left in place)", len(st.m))
	}
	if code, _, _ := a.get(c, "/console/approvals"); code != http.StatusOK {
		t.Fatalf("at the replica that signed the person in, after the other read the session: %d", code)
	}
	if got := b.c.SessionsRefused(); got != uint64(n) {
		t.Fatalf("SessionsRefused at the replica that cannot verify = %d, want %d", got, n)
	}
	if got := a.c.SessionsRefused(); got != 0 {
		t.Fatalf("SessionsRefused at the replica that verifies the session = %d, want 0", got)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A stored session keeps how to check its person again and who they were, not their role or
// scopes: those come from the grant on every request. A row of the earlier form, which kept
// them, still reads — and its stored role never wins over the grant's.
func TestSharedSessionKeepsNoRoleOrScopes(t *testing.T) {
	st := &keptStore{m: map[[sha256.Size]byte][]byte{}}
	key := DeriveSessionKey([]byte("a ledger hash key of thirty-two bytes"))
	r := newRigWith(t, false, func(o *Options, _ string) {
		o.Auth = grantAuth{o.Auth.(*fakeAuth)}
		o.Sessions, o.SessionKey = st, key
	})
	r.signIn(keyBob)
	if len(st.m) != 1 {
		t.Fatalf("%d sessions stored", len(st.m))
	}
	for _, sealed := range st.m {
		data := string(sealed[sha256.Size:])
		for _, field := range []string{`"role"`, `"Scopes"`, `"Kind"`, `"Name"`} {
			if strings.Contains(data, field) {
				t.Errorf("the stored session keeps %s, which no reader uses: %s", field, data)
			}
		}
		if !strings.Contains(data, `"approver":{"ID":"bob"}`) {
			t.Errorf("the stored session does not name who signed in: %s", data)
		}
	}

	// A row of the earlier form for bob's grant, claiming admin of everything.
	token := "an-earlier-replica's-session"
	k := sha256.Sum256([]byte(token))
	now := time.Now()
	old := `{"v":1,"approver":{"ID":"bob","Name":"","Kind":1,"Scopes":[{"agents":[".*"],"tools":[".*"]}]},"role":"admin",` +
		`"grant":{"key_id":"id-` + keyBob + `"},"created":"` + now.Format(time.RFC3339Nano) + `","expires":"` + now.Add(time.Hour).Format(time.RFC3339Nano) + `"}`
	ss := &sharedSessions{key: key}
	st.m[k] = ss.seal(k, []byte(old))
	r.hold("agent-a", "wire", `{"amount":1}`)
	c := r.client()
	c.Jar.SetCookies(mustURL(t, r.srv.URL+"/console/"), []*http.Cookie{{Name: cookieName, Value: token, Path: "/console"}})
	code, body, _ := r.get(c, "/console/approvals")
	if code != http.StatusOK || !strings.Contains(body, `id="principal">bob<`) {
		t.Fatalf("a session of the earlier form: %d %.300s", code, body)
	}
	if strings.Contains(body, "agent-a") {
		t.Fatal("the earlier row's stored role and scopes won over the grant's: bob sees agent-a's request")
	}
}

// notHereAuth is grantAuth whose kept grants this replica cannot check while notHere is set (the
// key missing from its key file): a refusal that is not the session's end.
type notHereAuth struct {
	grantAuth
	notHere *atomic.Bool
}

func (n notHereAuth) ConsoleGrantPrincipal(ctx context.Context, gr Grant, now time.Time) (Principal, error) {
	if n.notHere.Load() {
		return Principal{}, fmt.Errorf("%w: api key %s is not in this replica's key file", ErrNotHere, gr.KeyID)
	}
	return n.grantAuth.ConsoleGrantPrincipal(ctx, gr, now)
}

// A live-queue stream whose session this replica can no longer check ends, leaves the session to
// the replicas that can, and counts the refusal (portcullis_console_sessions_refused_total), as a
// page request refused for the same reason does.
func TestLiveQueueOfASessionNotCheckedHereCountsTheRefusal(t *testing.T) {
	st := &keptStore{m: map[[sha256.Size]byte][]byte{}}
	var notHere atomic.Bool
	r := newRigWith(t, false, func(o *Options, _ string) {
		o.Auth = notHereAuth{grantAuth{o.Auth.(*fakeAuth)}, &notHere}
		o.Sessions, o.SessionKey = st, DeriveSessionKey([]byte("a ledger hash key of thirty-two bytes"))
	})
	lines := r.liveQueue(r.signIn(keyAlice))
	if !lines.Scan() || lines.Text() != "event: queue" {
		t.Fatalf("stream opened with %q, %v", lines.Text(), lines.Err())
	}
	notHere.Store(true)
	for lines.Scan() { // until the stream's next check of the session ends it
	}
	if err := lines.Err(); err != nil {
		t.Fatalf("the stream did not end: %v", err)
	}
	if got := r.c.SessionsRefused(); got != 1 {
		t.Errorf("SessionsRefused after the stream ended on a session not checked here = %d, want 1", got)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.m) != 1 {
		t.Errorf("%d sessions stored after the stream ended, want 1 (left to the replicas that can check it)", len(st.m))
	}
}
