package app

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// On one machine (the embedded default: nonces journalled in the data directory) an outcome is
// accepted after a restart of the gateway that made the decision — the token is checked with the
// ledger's hash key, not looked up in memory — and still only once: the claim survives the
// next restart too.
func TestOutcomeAfterRestart(t *testing.T) {
	ctx := context.Background()
	_, cfgPath, key, cfg := initDefault(t)
	post := func(a *App, path string, body []byte) (int, answer) {
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+key)
		return serveAnswer(t, a, r)
	}
	open := func() *App {
		a, err := Open(ctx, cfg, cfgPath, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
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
