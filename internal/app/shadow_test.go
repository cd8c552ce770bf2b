package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// The candidate set hot-reloads beside the enforced one: a good change comes into the shadow, a
// malformed one is rejected (the previous candidate keeps deciding, the enforced set untouched).
func TestShadowReloadsAndRejectsBeside(t *testing.T) {
	v1000, _ := transferPolicy(1000)
	var cand string
	g := newGatewayWith(t, func(cfg *config.Config) {
		enforced, _ := transferPolicy(5000)
		if err := os.WriteFile(filepath.Join(cfg.DataDir, "policies", "report-generator-v1.yaml"), []byte(enforced), 0o600); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(cfg.DataDir, "candidate")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		cand = filepath.Join(dir, "report-generator-v1.yaml")
		if err := os.WriteFile(cand, []byte(v1000), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.ShadowPolicies = []string{dir}
	})
	// shadowOf decides a transfer of 3000 (allowed by the enforced set) and returns the
	// candidate's verdict on the record ("" when it agreed).
	shadowOf := func() string {
		t.Helper()
		_, a := g.post("/v1/decide", g.key, []byte(`{"tool":"transfer_funds","params":{"amount":3000}}`))
		if a.Decision != "ALLOW" {
			t.Fatalf("transfer of 3000 = %s: the enforced set allows it", a.Decision)
		}
		var got *ledger.Shadow
		found := false
		g.scanLedger(func(r ledger.Record) {
			if r.DecisionID == a.DecisionID && r.Kind == ledger.KindDecision {
				got, found = r.Shadow, true
			}
		})
		if !found {
			t.Fatalf("no record of %s", a.DecisionID)
		}
		if got == nil {
			return ""
		}
		return got.Decision
	}
	if s := shadowOf(); s != "deny" {
		t.Fatalf("candidate verdict %q, want deny", s)
	}
	// Malformed: rejected, the previous candidate still decides.
	if err := os.WriteFile(cand, []byte("agent_id: report-generator-v1\nrules: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the rejected candidate reported", func() bool { return strings.Contains(g.logBuf(), "shadow:") })
	if s := shadowOf(); s != "deny" {
		t.Fatalf("after a malformed candidate the shadow verdict is %q, want the previous candidate's deny", s)
	}
	// A candidate that agrees with the enforced set comes in; agreeing calls carry no verdict.
	v5000, _ := transferPolicy(5000)
	if err := os.WriteFile(cand, []byte(v5000), 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the new candidate", func() bool { return shadowOf() == "" })
}
