package guard

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// TestOutcomeAtAnotherReplica: an outcome is checked by its token, not by the memory of the
// process that decided. Two guards that share the outcome key and the claim store (replicas)
// accept each other's decisions' outcomes, once between them; a guard with another key (a
// stranger, or a replica misconfigured) refuses them.
func TestOutcomeAtAnotherReplica(t *testing.T) {
	key := DeriveOutcomeKey([]byte("0123456789abcdef0123456789abcdef"))
	claims := identity.NewMemoryNonceStore(nil)
	shared := func(o *Options) { o.OutcomeKey, o.OutcomeClaims = key, claims }
	r1 := newHarnessWith(t, harnessOptions{guard: shared})
	r2 := newHarnessWith(t, harnessOptions{guard: shared})
	stranger := newHarnessWith(t, harnessOptions{guard: func(o *Options) { o.OutcomeKey = DeriveOutcomeKey([]byte("another key, another gateway")) }})
	ctx := context.Background()

	d := r1.g.Check(ctx, r1.call("fetch_sales_data", `{"query_type":"monthly"}`))
	if !d.Allowed() || !strings.HasPrefix(d.OutcomeToken, outcomeTokenPrefix) {
		t.Fatalf("setup: %v token %q", d.Action, d.OutcomeToken)
	}
	report := func(h *harness) *ResultDecision {
		return withRP(h.g, ResultPolicy{}).CheckResult(ctx, Outcome{DecisionID: d.ID, Token: d.OutcomeToken, Source: "test",
			Credentials: identity.Credentials{APIKey: h.key}, Ran: true, Success: true})
	}
	if rd := report(stranger); rd.Action != ResultBlock || rd.Code != CodeOutcomeToken {
		t.Errorf("another key: %v %q (%v)", rd.Action, rd.Code, rd.Err)
	}
	rd := report(r2)
	if rd.Action != ResultPass || rd.Code != "" {
		t.Fatalf("outcome at the other replica: %v %q (%v)", rd.Action, rd.Code, rd.Err)
	}
	if rec := r2.recordOf(t, d.ID, string(ledger.KindToolResult)); rec.Tool != "fetch_sales_data" || rec.Decision != "pass" {
		t.Errorf("tool_result at replica 2: tool %q decision %q", rec.Tool, rec.Decision)
	}
	for _, h := range []*harness{r1, r2} {
		if rd := report(h); rd.Code != CodeOutcomeReported {
			t.Errorf("second report: %v %q", rd.Action, rd.Code)
		}
	}
}

// TestOutcomeTokenRefusals: a forged, truncated, absent, expired, other-agent or replayed token
// is refused with its stable code, and recorded as a blocked tool_result; the refusals that are
// not about this agent's own genuine token do not spend the one outcome.
func TestOutcomeTokenRefusals(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	h := newHarnessWith(t, harnessOptions{guard: func(o *Options) { o.Now, o.OutcomeTTL = now, 10*time.Minute }})
	ctx := context.Background()
	creds := identity.Credentials{APIKey: h.key}
	d := h.g.Check(ctx, h.call("fetch_sales_data", `{"query_type":"monthly"}`))
	if !d.Allowed() {
		t.Fatalf("setup: %v %q", d.Action, d.Code)
	}
	report := func(id, token, tool string) *ResultDecision {
		return withRP(h.g, ResultPolicy{}).CheckResult(ctx, Outcome{DecisionID: id, Token: token, Tool: tool, Source: "test", Credentials: creds, Ran: true, Success: true})
	}
	body, mac, _ := strings.Cut(strings.TrimPrefix(d.OutcomeToken, outcomeTokenPrefix), ".")
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	raw[len(raw)-1]++ // a later expiry, same MAC
	longer := outcomeTokenPrefix + base64.RawURLEncoding.EncodeToString(raw) + "." + mac
	macRaw, _ := base64.RawURLEncoding.DecodeString(mac)
	macRaw[0] ^= 1
	flipped := outcomeTokenPrefix + body + "." + base64.RawURLEncoding.EncodeToString(macRaw)
	other := h.g.Check(ctx, h.call("fetch_sales_data", `{"query_type":"annual"}`))

	for _, tc := range []struct {
		name, id, token, tool, code string
	}{
		{"no token", d.ID, "", "", CodeOutcomeToken},
		{"not a token", d.ID, "pot1.!!!.???", "", CodeOutcomeToken},
		{"huge", d.ID, outcomeTokenPrefix + strings.Repeat("A", 1<<20), "", CodeOutcomeToken},
		{"payload changed", d.ID, longer, "", CodeOutcomeToken},
		{"mac changed", d.ID, flipped, "", CodeOutcomeToken},
		{"another decision's token", d.ID, other.OutcomeToken, "", CodeOutcomeToken},
		{"another decision ID", other.ID, d.OutcomeToken, "", CodeOutcomeToken},
		{"another agent's token", d.ID, h.g.outcomes.issue(d.ID, tokenClaims{agent: "billing-agent", tool: "fetch_sales_data"}, now()), "", CodeUnknownDecision},
		{"another tool", d.ID, d.OutcomeToken, "delete_file", CodeUnknownDecision},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := report(tc.id, tc.token, tc.tool)
			if rd.Action != ResultBlock || rd.Code != tc.code {
				t.Fatalf("got %v %q (%v), want block %q", rd.Action, rd.Code, rd.Err, tc.code)
			}
		})
	}
	for _, data := range h.records(t) {
		if len(data) > 64<<10 {
			t.Fatalf("a record of %d bytes: a hostile token was stored whole", len(data))
		}
	}
	// None of the above spent the outcome: the genuine report is accepted, once.
	if rd := report(d.ID, d.OutcomeToken, "fetch_sales_data"); rd.Action != ResultPass {
		t.Fatalf("genuine report: %v %q (%v)", rd.Action, rd.Code, rd.Err)
	}
	if rd := report(d.ID, d.OutcomeToken, ""); rd.Code != CodeOutcomeReported {
		t.Fatalf("replayed: %v %q", rd.Action, rd.Code)
	}
	// Past its window, a genuine token is refused as expired.
	clock.Add(int64(10 * time.Minute))
	if rd := report(other.ID, other.OutcomeToken, ""); rd.Code != CodeOutcomeTokenExpired {
		t.Fatalf("expired: %v %q (%v)", rd.Action, rd.Code, rd.Err)
	}
	last := h.records(t)[len(h.records(t))-1]
	if rec, err := ledger.ParseRecord([]byte(last)); err != nil || rec.DecisionID != other.ID || rec.Decision != "block" ||
		!strings.HasPrefix(rec.Reason, CodeOutcomeTokenExpired+": ") {
		t.Errorf("expired outcome recorded as %+v (%v)", rec, err)
	}
}

// TestOutcomeTokensOnlyForAllowed: a denial or a held call carries no token, so there is nothing
// to report an outcome with.
func TestOutcomeTokensOnlyForAllowed(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	for _, c := range []struct{ tool, params string }{{"delete_file", `{}`}, {"wire_money", `{"amount":5}`}} {
		d := h.g.Check(ctx, h.call(c.tool, c.params))
		if d.Allowed() || d.OutcomeToken != "" {
			t.Errorf("%s: %v with token %q", c.tool, d.Action, d.OutcomeToken)
		}
	}
}

// TestOutcomeClaimedOnceUnderRace: of many concurrent reports of one decision at two replicas,
// exactly one is accepted.
func TestOutcomeClaimedOnceUnderRace(t *testing.T) {
	key := DeriveOutcomeKey([]byte("0123456789abcdef0123456789abcdef"))
	claims := identity.NewMemoryNonceStore(nil)
	shared := func(o *Options) { o.OutcomeKey, o.OutcomeClaims = key, claims }
	hs := []*harness{newHarnessWith(t, harnessOptions{guard: shared}), newHarnessWith(t, harnessOptions{guard: shared})}
	ctx := context.Background()
	d := hs[0].g.Check(ctx, hs[0].call("fetch_sales_data", `{"query_type":"monthly"}`))
	if d.Action != policy.Allow {
		t.Fatalf("setup: %v", d.Action)
	}
	var passed atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			h := hs[i%2]
			rd := withRP(h.g, ResultPolicy{}).CheckResult(ctx, Outcome{DecisionID: d.ID, Token: d.OutcomeToken, Credentials: identity.Credentials{APIKey: h.key}, Ran: true})
			if rd.Action == ResultPass {
				passed.Add(1)
			} else if rd.Code != CodeOutcomeReported {
				t.Errorf("refused with %q", rd.Code)
			}
		})
	}
	wg.Wait()
	if passed.Load() != 1 {
		t.Fatalf("%d reports accepted, want 1", passed.Load())
	}
}

func TestOutcomeKeyTooShort(t *testing.T) {
	if _, err := newOutcomeTokens([]byte("short"), 0, nil, time.Now); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}

// BenchmarkOutcomeToken: what binding an outcome to its decision costs — one token issued with
// every allowed decision, one verified with its outcome.
//
//	go test ./internal/guard -run '^$' -bench OutcomeToken
func BenchmarkOutcomeToken(b *testing.B) {
	tk, err := newOutcomeTokens(DeriveOutcomeKey([]byte("0123456789abcdef")), 0, nil, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	id, at := NewDecisionID(), time.Now()
	b.Run("issue", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = tk.issue(id, tokenClaims{agent: "report-generator-v1", tool: "fetch_customer_names"}, at)
		}
	})
	tok := tk.issue(id, tokenClaims{agent: "report-generator-v1", tool: "fetch_customer_names"}, at)
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tk.verify(id, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
