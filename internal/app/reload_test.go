package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// transferPolicy allows transfers up to max and denies the rest (the default). Cut after the
// rule's "action: ALLOW" line it is still a valid policy: one that allows every transfer.
func transferPolicy(max int) (whole, firstHalf string) {
	head := "agent_id: report-generator-v1\ndefault_action: DENY\nrules:\n  - name: transfers\n    tool: transfer_funds\n    action: ALLOW\n"
	return head + fmt.Sprintf("    conditions:\n      - parameter: amount\n        max_value: %d\n", max), head
}

func (g *gateway) transfer(amount int) string {
	g.t.Helper()
	_, a := g.post("/v1/decide", g.key, fmt.Appendf(nil, `{"tool":"transfer_funds","params":{"amount":%d}}`, amount))
	return a.Decision
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A policy rewritten in place with a pause mid-file: the half file is valid and looser than both
// versions. It must never be in force; the finished file must come into force.
func TestReloadIgnoresHalfWrittenPolicy(t *testing.T) {
	v1, _ := transferPolicy(1000)
	var polPath string
	g := newGatewayWith(t, func(cfg *config.Config) {
		polPath = filepath.Join(cfg.DataDir, "policies", "report-generator-v1.yaml")
		if err := os.WriteFile(polPath, []byte(v1), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	if d := g.transfer(1_000_000); d != "DENY" {
		t.Fatalf("before: transfer of 1,000,000 = %s", d)
	}
	v2, half := transferPolicy(5000)
	// Keep the test honest: the half file really is a policy that would allow the transfer.
	if set, err := policy.Compile(mustParse(t, half)); err != nil {
		t.Fatalf("the half file does not parse, the test proves nothing: %v", err)
	} else if d := set.Evaluate(&policy.Request{Agent: policy.Agent{ID: "report-generator-v1"}, Tool: "transfer_funds",
		Params: map[string]any{"amount": 1_000_000.0}, Time: time.Now()}); d.Action != policy.Allow {
		t.Fatalf("the half file decides %s, the test proves nothing", d.Action)
	}

	f, err := os.OpenFile(polPath, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(half); err != nil {
		t.Fatal(err)
	}
	// A pause far longer than any settle interval the reloader uses.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if d := g.transfer(1_000_000); d != "DENY" {
			t.Fatalf("during the pause a transfer of 1,000,000 was %s: the half-written policy is in force", d)
		}
	}
	if _, err := f.WriteString(v2[len(half):]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the finished policy", func() bool { return g.transfer(4000) == "ALLOW" })
	if d := g.transfer(1_000_000); d != "DENY" {
		t.Fatalf("after: transfer of 1,000,000 = %s", d)
	}
}

func mustParse(t *testing.T, text string) *policy.File {
	t.Helper()
	f, err := policy.Parse("half.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// A policy directory mounted from a Kubernetes ConfigMap: the kubelet swaps the "..data" symlink;
// the visible files are symlinks that never change.
func TestReloadConfigMapSwap(t *testing.T) {
	cm := t.TempDir()
	mkdata := func(name string, max int) {
		t.Helper()
		whole, _ := transferPolicy(max)
		if err := os.Mkdir(filepath.Join(cm, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cm, name, "report-generator-v1.yaml"), []byte(whole), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mkdata("..2026_01_01_00_00_00.1", 1000)
	if err := os.Symlink("..2026_01_01_00_00_00.1", filepath.Join(cm, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/report-generator-v1.yaml", filepath.Join(cm, "report-generator-v1.yaml")); err != nil {
		t.Fatal(err)
	}
	g := newGatewayWith(t, func(cfg *config.Config) { cfg.Policies = []string{cm} })
	if d := g.transfer(4000); d != "DENY" {
		t.Fatalf("before: transfer of 4000 = %s", d)
	}
	mkdata("..2026_01_01_00_01_00.2", 5000)
	if err := os.Symlink("..2026_01_01_00_01_00.2", filepath.Join(cm, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(cm, "..data_tmp"), filepath.Join(cm, "..data")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the swapped ConfigMap policy", func() bool { return g.transfer(4000) == "ALLOW" })
}

// Requests read the configuration while a reload replaces it: under -race this fails if the
// reload writes what requests read.
func TestConfigReloadRace(t *testing.T) {
	m := newMCPSigned(t)
	cfgPath := m.app.cfgPath
	orig, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if body := m.get(t, "/.well-known/oauth-protected-resource/mcp"); !strings.Contains(body, "authorization_servers") {
				t.Errorf("metadata: %s", body)
				return
			}
		}
	}()
	for i := range 20 {
		next := bytes.Replace(orig, []byte("      roles: [reporting]\n"), fmt.Appendf(nil, "      roles: [reporting]\n    - id: agent-%d\n", i), 1)
		if err := os.WriteFile(cfgPath, next, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := m.app.reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

// The same attack on portcullis.yaml: a half file that is valid on its own (here it already
// declares a new agent, and lacks every section after it) must never be in force.
func TestReloadIgnoresHalfWrittenConfig(t *testing.T) {
	g := newGateway(t)
	ks, err := identity.OpenFileKeyStore(filepath.Join(g.dir, identity.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	lateKey, _, err := identity.CreateAPIKey(context.Background(), ks, "late-agent", "test", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"tool":"fetch_customer_names","params":{"limit":5}}`)
	cfgPath := filepath.Join(g.dir, ConfigFile)
	orig, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	const cut = "    - id: other-agent\n"
	i := bytes.Index(orig, []byte(cut))
	if i < 0 {
		t.Fatal("the test configuration changed; update the cut")
	}
	half := string(orig[:i+len(cut)]) + "    - id: late-agent\n"
	rest := string(orig[i+len(cut):])
	if _, err := config.Parse("half.yaml", []byte(half)); err != nil {
		t.Fatalf("the half file does not parse, the test proves nothing: %v", err)
	}
	f, err := os.OpenFile(cfgPath, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(half); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if status, _ := g.post("/v1/decide", lateKey, body); status != 401 {
			t.Fatalf("during the pause the new agent got %d: the half-written configuration is in force", status)
		}
	}
	if _, err := f.WriteString(rest); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the finished configuration", func() bool {
		status, _ := g.post("/v1/decide", lateKey, body)
		return status == 200
	})
}

// The result policy is guard state in the run-time snapshot: turning redaction off in the
// configuration file applies to the next result without a restart.
func TestReloadSwapsResultPolicy(t *testing.T) {
	g := newGateway(t)
	secret := "sk_test_" + "Zq8vR2mN4pL6tY1xW3cB5dFh"
	outcome := func() string {
		t.Helper()
		_, d := g.post("/v1/decide", g.key, []byte(`{"tool":"fetch_customer_names","params":{"limit":2}}`))
		if d.Decision != "ALLOW" {
			t.Fatalf("setup: %+v", d)
		}
		_, o := g.post("/v1/outcome", g.key, []byte(`{"decision_id":"`+d.DecisionID+`","outcome_token":"`+d.Token+`","ran":true,"success":true,"result":{"note":"key `+secret+`"}}`))
		return o.Action
	}
	if got := outcome(); got != "redact" {
		t.Fatalf("before: %s, want redact", got)
	}
	cfgPath := filepath.Join(g.dir, ConfigFile)
	orig, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	next := bytes.Replace(orig, []byte("redact_results: true"), []byte("redact_results: false"), 1)
	if bytes.Equal(next, orig) {
		t.Fatal("the test configuration changed; update the replacement")
	}
	if err := os.WriteFile(cfgPath, next, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.app.reload(); err != nil {
		t.Fatal(err)
	}
	if got := outcome(); got != "pass" {
		t.Errorf("after turning redaction off: %s, want pass", got)
	}
}

// A reload compares the file with the file: settings overridden at start (--listen, here the
// listen address and a body limit) are not changes, a reloadable change is applied without a
// restart warning, and a change that needs a restart is named by its keys.
func TestReloadNamesTheKeysThatNeedARestart(t *testing.T) {
	g := newGatewayWith(t, func(cfg *config.Config) { cfg.Listen = "127.0.0.1:0" })
	cfgPath := g.app.cfgPath
	orig, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := g.app.reload(); err != nil {
			t.Fatal(err)
		}
	}
	withAgent := bytes.Replace(orig, []byte("      roles: [reporting]\n"), []byte("      roles: [reporting]\n    - id: third-agent\n"), 1)
	rewrite(withAgent)
	if agents := len(g.app.rt.Load().cfg.Identity.Agents); agents != 3 {
		t.Fatalf("the new agent was not applied: %d agents", agents)
	}
	if logs := g.logBuf(); strings.Contains(logs, "restart") {
		t.Fatalf("a reloadable change warned of a restart:\n%s", logs)
	}
	rewrite(append(withAgent, "limits:\n  max_depth: 10\ntracing:\n  service_name: gw-2\n"...))
	waitUntil(t, "the restart warning", func() bool { return strings.Contains(g.logBuf(), "restart") })
	logs := g.logBuf()
	if !strings.Contains(logs, `"keys":["limits.max_depth","tracing.service_name"]`) || strings.Contains(logs, "listen") || strings.Contains(logs, "max_body_bytes") {
		t.Errorf("restart warning does not name exactly the changed keys:\n%s", logs)
	}
	if n := strings.Count(logs, "restart"); n != 1 {
		t.Errorf("%d restart warnings, want 1", n)
	}
}

// Policies removed while serving: the empty set is applied (every call denied, fail closed)
// and the log says so, rather than a silent deny-everything gateway.
func TestReloadToNoPolicyWarns(t *testing.T) {
	g := newGateway(t)
	if err := os.Remove(filepath.Join(g.dir, "policies", "report-generator-v1.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := g.app.reload(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(g.logBuf(), "the reloaded policy set holds no policy") {
		t.Errorf("no warning:\n%s", g.logBuf())
	}
	if _, d := g.post("/v1/decide", g.key, []byte(`{"tool":"fetch_customer_names","params":{"limit":2}}`)); d.Decision != "DENY" {
		t.Errorf("with no policy: %+v", d)
	}
}
