package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// limits.outcome_ttl sets how long an allowed decision's outcome may be reported: the token the
// decision answers with expires that long after it was issued, and the outcome is still accepted
// (once) inside it.
func TestOutcomeTTLSetting(t *testing.T) {
	ctx := context.Background()
	_, cfgPath, key, cfg := initDefault(t)
	cfg.Limits.OutcomeTTL = 7 * time.Minute
	a, err := Open(ctx, cfg, cfgPath, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	post := func(a *App, path string, body []byte) (int, answer) {
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+key)
		return serveAnswer(t, a, r)
	}
	_, d := post(a, "/v1/decide", []byte(`{"tool":"fetch_customer_names","params":{"limit":2}}`))
	if d.Decision != "ALLOW" || d.Token == "" {
		t.Fatalf("decide: %+v", d)
	}
	// "pot1." payload "." mac; the payload ends with issued and expires, unix ms.
	body, _, _ := strings.Cut(strings.TrimPrefix(d.Token, "pot1."), ".")
	p, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(p) < 16 {
		t.Fatalf("token payload %q: %v", body, err)
	}
	issued := int64(binary.BigEndian.Uint64(p[len(p)-16:]))
	expires := int64(binary.BigEndian.Uint64(p[len(p)-8:]))
	if got := time.Duration(expires-issued) * time.Millisecond; got != 7*time.Minute {
		t.Errorf("outcome token lives %v, want the configured 7m", got)
	}
	outcome := []byte(`{"decision_id":"` + d.DecisionID + `","outcome_token":"` + d.Token + `","ran":true,"success":true,"result":{"names":["Ada"]}}`)
	for _, want := range []int{http.StatusOK, http.StatusConflict} {
		if status, o := post(a, "/v1/outcome", outcome); status != want {
			t.Fatalf("outcome: %d %+v, want %d", status, o, want)
		}
	}
}

// The gateway's outcome claims are what its steady memory is mostly made of (an hour of
// reported outcomes by default): each takes an 8-byte keyed digest in an expiry bucket, not the
// 16 bytes of a signature nonce's. Measured on the store the embedded default opens, with
// claims of the guard's key shape: at most 24 bytes of heap each (16-byte digests took ≈ 37).
func TestOutcomeClaimsCompact(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 300,000 claims")
	}
	ctx := context.Background()
	_, open, _ := restartRig(t)
	a := open()
	defer a.Close(ctx)
	const n = 300_000
	keys := make([]string, n)
	for i := range keys {
		// "\x00outcome\x00" and a decision ID (a UUID's length).
		keys[i] = "\x00outcome\x00" + strconv.FormatUint(uint64(i)*0x9e3779b97f4a7c15, 16) + "-0000-4000-8000-000000000000"
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, k := range keys {
		if fresh, err := a.stores.claims.Use(ctx, k, time.Hour+time.Minute); err != nil || !fresh {
			t.Fatalf("claim: %v %v", fresh, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keys)
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	t.Logf("%.1f B per claim", per)
	if per > 24 {
		t.Errorf("%.1f B of heap per outcome claim, want at most 24", per)
	}
}

// limits.max_outcome_claims bounds the claim store the gateway opens: past it an outcome's claim
// is refused (the outcome is outcome_claims_unavailable), not an earlier claim forgotten.
func TestMaxOutcomeClaimsSetting(t *testing.T) {
	ctx := context.Background()
	_, cfgPath, _, cfg := initDefault(t)
	cfg.Limits.MaxOutcomeClaims = 1000
	a, err := Open(ctx, cfg, cfgPath, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	for i := range 1000 {
		if fresh, err := a.stores.claims.Use(ctx, "\x00outcome\x00"+strconv.Itoa(i), time.Hour+time.Minute); err != nil || !fresh {
			t.Fatalf("claim %d: %v %v", i, fresh, err)
		}
	}
	if fresh, err := a.stores.claims.Use(ctx, "\x00outcome\x00x", time.Hour+time.Minute); err == nil || fresh {
		t.Fatalf("claim past limits.max_outcome_claims: fresh=%v err=%v, want refused", fresh, err)
	}
}
