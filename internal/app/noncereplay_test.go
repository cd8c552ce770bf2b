package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

// serveAnswer has the app answer r in process and decodes its JSON answer.
func serveAnswer(t *testing.T, a *App, r *http.Request) (int, answer) {
	t.Helper()
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, r)
	var ans answer
	if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
		t.Fatalf("non-JSON answer %d %q", w.Code, w.Body.Bytes())
	}
	return w.Code, ans
}

// The attack: the nonce store was in memory, so a signed request captured before a restart was
// accepted once more after it. Through the real app and handler: sign a request, decide, close,
// reopen on the same data directory, replay the exact bytes — refused as a replay.
func TestSignedRequestReplayAfterRestart(t *testing.T) {
	ctx := context.Background()
	_, cfgPath, _, cfg := initDefault(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identity.Agents[0].SigningKeys = []identity.SigningKeyConfig{{ID: "rg-key", PublicKey: base64.StdEncoding.EncodeToString(pub)}}

	body := []byte(`{"tool":"fetch_customer_names","params":{"limit":10}}`)
	req, _ := http.NewRequest(http.MethodPost, "http://gate.example/v1/decide", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := (&httpsig.Signer{KeyID: "rg-key", Key: priv}).Sign(req, body); err != nil {
		t.Fatal(err)
	}
	send := func(a *App) (int, answer) {
		r := req.Clone(ctx)
		r.Body = io.NopCloser(bytes.NewReader(body))
		return serveAnswer(t, a, r)
	}

	a1, err := Open(ctx, cfg, cfgPath, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if status, ans := send(a1); status != http.StatusOK || ans.Error != nil {
		a1.Close(ctx)
		t.Fatalf("first use: %d %s", status, fmtErr(ans))
	}
	if status, ans := send(a1); status != http.StatusUnauthorized || ans.Error == nil || ans.Error.Code != "signature_replayed" {
		t.Errorf("replay before the restart: %d %s", status, fmtErr(ans))
	}
	a1.Close(ctx)

	a2, err := Open(ctx, cfg, cfgPath, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close(ctx)
	status, ans := send(a2)
	if status != http.StatusUnauthorized || ans.Decision != "DENY" || ans.Error == nil || ans.Error.Code != "signature_replayed" {
		t.Fatalf("replay after the restart: %d %s %s, want 401 signature_replayed", status, ans.Decision, fmtErr(ans))
	}
	// A fresh signature still works after the restart.
	fresh, _ := http.NewRequest(http.MethodPost, "http://gate.example/v1/decide", bytes.NewReader(body))
	fresh.Header.Set("Content-Type", "application/json")
	if err := (&httpsig.Signer{KeyID: "rg-key", Key: priv}).Sign(fresh, body); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	a2.Handler().ServeHTTP(w, fresh)
	if w.Code != http.StatusOK {
		t.Errorf("a fresh signature after the restart: %d %s", w.Code, w.Body.Bytes())
	}
}
