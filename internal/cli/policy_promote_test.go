package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// transferLimit allows the demo agent transfers up to max and denies the rest.
func transferLimit(max int) string {
	return fmt.Sprintf("agent_id: %s\nversion: \"max-%d\"\ndefault_action: DENY\nrules:\n  - name: transfers\n    tool: transfer_funds\n    action: ALLOW\n    conditions:\n      - parameter: amount\n        max_value: %d\n", app.DemoAgent, max, max)
}

// A candidate set runs in shadow beside the enforced one in a real gateway: its differing
// verdict is recorded and counted but never enforced; promote refuses a malformed candidate
// without touching the enforced set, then swaps a good one in and the next decision follows it.
func TestPolicyShadowAndPromote(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfgPath, key, err := app.Init(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	enforced := filepath.Join(dir, "policies", app.DemoAgent+".yaml")
	cand := filepath.Join(dir, "candidate")
	if err := os.Mkdir(cand, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(enforced, transferLimit(5000))
	// Enforced only: promote removes it, so the enforced directory then holds the candidate.
	stale := filepath.Join(dir, "policies", "other-agent.yaml")
	write(stale, "agent_id: other-agent\ndefault_action: DENY\nrules: []\n")
	write(filepath.Join(cand, app.DemoAgent+".yaml"), transferLimit(1000))
	cfgText, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	write(cfgPath, string(cfgText)+"shadow_policies: [candidate]\n")
	url, shut := serveGateway(t, cfgPath)
	decide := func(amount int) (decision, id string) {
		t.Helper()
		return decideAt(t, url, key, fmt.Sprintf(`{"tool":"transfer_funds","params":{"amount":%d}}`, amount))
	}

	// The candidate would deny 4000; the enforced set allows it, and that is what happens.
	d, differs := decide(4000)
	if d != "ALLOW" {
		t.Fatalf("transfer of 4000 under the enforced set = %s, want ALLOW (the shadow set must not be enforced)", d)
	}
	d, agrees := decide(500)
	if d != "ALLOW" {
		t.Fatalf("transfer of 500 = %s", d)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`portcullis_shadow_decisions_total{transition="ALLOW→DENY"} 1`, `portcullis_shadow_decisions_total{transition="ALLOW→ALLOW"} 1`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// A malformed candidate is refused and the enforced directory is left as it was.
	before, _ := os.ReadFile(enforced)
	write(filepath.Join(cand, "broken.yaml"), "agent_id: other\nrules: [\n")
	code, out, errs := run(t, "", "policy", "promote", "--config", cfgPath)
	if code == exitOK || strings.Contains(out, "deployed") {
		t.Fatalf("promote of a malformed candidate: exit %d\n%s\n%s", code, out, errs)
	}
	if after, _ := os.ReadFile(enforced); !bytes.Equal(before, after) {
		t.Fatal("a refused promote changed the enforced policy")
	}
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("a refused promote removed %s: %v", stale, err)
	}
	if d, _ := decide(4000); d != "ALLOW" {
		t.Fatalf("after a refused promote a transfer of 4000 = %s", d)
	}

	// A good candidate is promoted; the gateway reloads it and enforces it.
	if err := os.Remove(filepath.Join(cand, "broken.yaml")); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := run(t, "", "policy", "promote", "--config", cfgPath); code != exitOK {
		t.Fatalf("promote: exit %d\n%s\n%s", code, out, errs)
	}
	if got, _ := os.ReadFile(enforced); string(got) != transferLimit(1000) {
		t.Fatalf("the enforced file after promote:\n%s", got)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("promote left the enforced-only file %s (%v)", stale, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if d, _ := decide(4000); d == "DENY" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the promoted set did not come into force")
		}
		time.Sleep(50 * time.Millisecond)
	}
	shut()

	// The record of the differing call carries the candidate's verdict; the agreeing one none.
	st, _, ok := openStore(ctx, Stdio{Err: io.Discard}, &auditLoc{data: dir})
	if !ok {
		t.Fatal("open the ledger")
	}
	defer st.Close()
	recs := map[string]*ledger.Record{}
	if _, err := scanToolDecisions(ctx, st, decisionFilter{}, func(r *ledger.Record) { recs[r.DecisionID] = r }); err != nil {
		t.Fatal(err)
	}
	r := recs[differs]
	if r == nil || r.Decision != "allow" || r.Shadow == nil || r.Shadow.Decision != "deny" || r.Shadow.Rule != "" {
		t.Fatalf("record of the differing call: %+v shadow %+v", r, r.Shadow)
	}
	if r.Shadow.Version == "" || r.Shadow.Version == r.PolicyVersion {
		t.Fatalf("the shadow verdict's version %q, the enforced %q: they must name two sets", r.Shadow.Version, r.PolicyVersion)
	}
	if r := recs[agrees]; r == nil || r.Shadow != nil {
		t.Fatalf("record of the agreeing call: %+v", r)
	}
}

// config check (and so serve, before it opens anything) refuses a candidate that does not load.
func TestConfigCheckRefusesABrokenShadow(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _, err := app.Init(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "candidate"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "candidate", "broken.yaml"), []byte("agent_id: x\nrules: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgText, _ := os.ReadFile(cfgPath)
	if err := os.WriteFile(cfgPath, append(cfgText, "shadow_policies: [candidate]\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "", "config", "check", cfgPath)
	if code == exitOK || !strings.Contains(errs, "broken.yaml") {
		t.Fatalf("config check of a broken candidate: exit %d\n%s\n%s", code, out, errs)
	}
}
