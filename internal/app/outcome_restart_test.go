package app

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/identity"
)

// restartRig is an embedded-default data directory (dir), a way to open an App on it again and
// again, and an API-key POST to an App.
func restartRig(t *testing.T) (dir string, open func() *App, post func(a *App, path string, body []byte) (int, answer)) {
	dir, cfgPath, key, cfg := initDefault(t)
	post = func(a *App, path string, body []byte) (int, answer) {
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+key)
		return serveAnswer(t, a, r)
	}
	open = func() *App {
		a, err := Open(context.Background(), cfg, cfgPath, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	return dir, open, post
}

// On one machine (the embedded default: nonces journalled in the data directory) an outcome is
// accepted after a restart of the gateway that made the decision — the token is checked with the
// ledger's hash key, not looked up in memory — and still only once: the claim survives the
// next restart too.
func TestOutcomeAfterRestart(t *testing.T) {
	ctx := context.Background()
	_, open, post := restartRig(t)
	a := open()
	_, d := post(a, "/v1/decide", []byte(`{"tool":"fetch_customer_names","params":{"limit":2}}`))
	a.Close(ctx)
	if d.Decision != "ALLOW" || d.Token == "" {
		t.Fatalf("decide: %+v", d)
	}
	outcome := []byte(`{"decision_id":"` + d.DecisionID + `","outcome_token":"` + d.Token + `","ran":true,"success":true,"result":{"names":["Ada"]}}`)
	for i, want := range []int{http.StatusOK, http.StatusConflict} {
		a := open()
		status, o := post(a, "/v1/outcome", outcome)
		a.Close(ctx)
		if status != want {
			t.Fatalf("outcome after restart %d: %d %+v, want %d", i+1, status, o, want)
		}
	}
}

// Outcome claims live an outcome token's hour, signature nonces one signature window: they are
// kept apart, so claims cannot take the signatures' capacity (a full store refuses every signed
// request) nor multiply the expiry buckets each signature is looked up in. Reported outcomes
// leave the signature store empty, stay refused the second time, and a claim journaled with the
// signature nonces (the layout before the split) is still honoured after a restart.
func TestOutcomeClaimsApartFromSignatureNonces(t *testing.T) {
	ctx := context.Background()
	dir, open, post := restartRig(t)
	outcome := func(d answer) []byte {
		return []byte(`{"decision_id":"` + d.DecisionID + `","outcome_token":"` + d.Token + `","ran":true,"success":true,"result":{"names":["Ada"]}}`)
	}
	a := open()
	const n = 20
	var last answer
	for i := range n {
		_, d := post(a, "/v1/decide", []byte(`{"tool":"fetch_customer_names","params":{"limit":2}}`))
		if d.Decision != "ALLOW" || d.Token == "" {
			t.Fatalf("decide %d: %+v", i, d)
		}
		if status, o := post(a, "/v1/outcome", outcome(d)); status != http.StatusOK {
			t.Fatalf("outcome %d: %d %+v", i, status, o)
		}
		if status, o := post(a, "/v1/outcome", outcome(d)); status != http.StatusConflict {
			t.Fatalf("outcome %d again: %d %+v, want 409", i, status, o)
		}
		last = d
	}
	nonces := a.stores.nonces.(*identity.FileNonceStore)
	claims := a.stores.claims.(*identity.FileNonceStore)
	if nonces.Len() != 0 || claims.Len() != n {
		t.Errorf("after %d outcomes: %d signature nonces, %d claims; want 0 and %d", n, nonces.Len(), claims.Len(), n)
	}
	_, d := post(a, "/v1/decide", []byte(`{"tool":"fetch_customer_names","params":{"limit":3}}`))
	a.Close(ctx)
	if d.Decision != "ALLOW" || d.Token == "" {
		t.Fatalf("decide: %+v", d)
	}

	// The claim of d as the layout before the split journaled it: in the signature nonces.
	old, err := identity.OpenFileNonceStore(filepath.Join(dir, NoncesDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	if fresh, err := old.Use(ctx, "\x00outcome\x00"+d.DecisionID, time.Hour); !fresh || err != nil {
		t.Fatalf("journal the old claim: %v %v", fresh, err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	a = open()
	defer a.Close(ctx)
	for _, x := range []answer{last, d} {
		if status, o := post(a, "/v1/outcome", outcome(x)); status != http.StatusConflict {
			t.Errorf("outcome of %s after restart: %d %+v, want 409", x.DecisionID, status, o)
		}
	}
}
