package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

// jwksServer serves one Ed25519 key as a JWKS and counts the fetches.
func jwksServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{"keys": []map[string]any{{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(pub)}}})
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	return srv, &fetches
}

// An app whose agents and approvers log in with JWTs from JWKS URLs leaves nothing running once
// closed: the refresh goroutines and their HTTP connections end with Close.
func TestCloseStopsJWKSRefresh(t *testing.T) {
	idp, fetches := jwksServer(t)
	before := goleak.IgnoreCurrent()
	g := newGatewayWith(t, func(c *config.Config) {
		c.Identity.JWTIssuers = []identity.IssuerConfig{{Issuer: "https://agents.example/", Audiences: []string{"portcullis"},
			Algorithms: []string{"EdDSA"}, JWKSURL: idp.URL + "/agents"}}
		c.Approvals.Logins.Issuers = []identity.IssuerConfig{{Issuer: "https://people.example/",
			Algorithms: []string{"EdDSA"}, JWKSURL: idp.URL + "/people"}}
	})
	// Both refreshers fetched at least once, so their connections are open and idle.
	deadline := time.Now().Add(5 * time.Second)
	for fetches.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if fetches.Load() < 2 {
		t.Fatalf("JWKS fetched %d times, want 2", fetches.Load())
	}
	g.srv.Close()
	g.app.Close(context.Background())
	goleak.VerifyNone(t, before)
}

// webhookReceiver records the approval IDs of the signed notifications it receives.
func webhookReceiver(t *testing.T, secret []byte) (url string, got <-chan string) {
	t.Helper()
	ch := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := approval.VerifyWebhook(secret, r.Header.Get(approval.SignatureHeader), body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
		}
		ch <- r.Header.Get(approval.DeliveryHeader) + " " + string(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ch
}

// An app that never serves HTTP — the stdio wrapper without --listen — still delivers approval
// webhooks: the delivery runs from Open to Close, not from Serve. Before, the queue filled and
// notifications were dropped.
func TestWebhookDeliveredWithoutServe(t *testing.T) {
	secret := []byte("a webhook secret of at least thirty-two bytes")
	t.Setenv("PCL_TEST_WEBHOOK_SECRET", string(secret))
	url, got := webhookReceiver(t, secret)
	g := newGatewayWith(t, func(c *config.Config) {
		c.Approvals.Webhook = config.WebhookConfig{URL: url, SecretEnv: "PCL_TEST_WEBHOOK_SECRET"}
	})
	// In process, as the stdio wrapper decides: no HTTP server involved.
	d := g.app.Guard().Check(context.Background(), guard.Request{Source: "mcp", Credentials: identity.Credentials{APIKey: g.key},
		Tool: "fetch_customer_names", Params: json.RawMessage(`{"limit":5,"filter":"x' UNION SELECT password FROM users --"}`)})
	if d.ApprovalID == "" {
		t.Fatalf("not held: %v %q", d.Action, d.Code)
	}
	select {
	case n := <-got:
		if !strings.Contains(n, d.ApprovalID) {
			t.Errorf("notification %q does not name %s", n, d.ApprovalID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook delivered for the held call")
	}
}

// Every test of the package leaves no goroutine behind once its apps are closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
