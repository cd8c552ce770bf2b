package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
)

// TestMCPStdioWrapperWithoutListen: the stdio wrapper without --listen runs the same background
// work as serve — it delivers the approval webhook of a call it holds (signed), and it hot-reloads
// a policy deployed while it runs.
func TestMCPStdioWrapperWithoutListen(t *testing.T) {
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, echoHeldPolicy)
	secret := "an e2e webhook secret of thirty-two bytes or more"
	notes := make(chan string, 8)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := approval.VerifyWebhook([]byte(secret), r.Header.Get(approval.SignatureHeader), body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
		}
		notes <- string(body)
	}))
	defer hook.Close()
	appendConfig(t, dir, "mcp:\n  approval_wait: 200ms\n")
	cfgPath := filepath.Join(dir, "portcullis.yaml")
	cfg, _ := os.ReadFile(cfgPath)
	cfg = []byte(strings.Replace(string(cfg), "approvals:\n", "approvals:\n  webhook:\n    url: "+hook.URL+"\n    secret_env: PCL_E2E_WEBHOOK_SECRET\n", 1))
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, stderr := connectEchoWrapper(t, ctx, dir, nil, "PORTCULLIS_API_KEY="+agentKey, "PCL_E2E_WEBHOOK_SECRET="+secret)
	defer cs.Close()

	held := call(t, ctx, cs, "e__echo", map[string]any{"text": "needs a human"})
	id := approvalRe.FindString(text(held))
	if !held.IsError || id == "" {
		t.Fatalf("not held: %q", text(held))
	}
	select {
	case n := <-notes:
		if !strings.Contains(n, id) {
			t.Errorf("notification does not name %s: %s", id, n)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no webhook for %s from the wrapper\n%s", id, stderr.String())
	}

	// Deployed as `policy deploy` does (written beside, renamed over): the wrapper reloads it.
	next := filepath.Join(dir, "policies", ".next.yaml.tmp")
	if err := os.WriteFile(next, []byte(`agent_id: report-generator-v1
default_action: DENY
rules:
  - name: echo_allowed
    tool: e__echo
    action: ALLOW
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, filepath.Join(dir, "policies", "report-generator-v1.yaml")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r := call(t, ctx, cs, "e__echo", map[string]any{"text": "after the reload"})
		if !r.IsError && strings.Contains(text(r), "after the reload") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new policy was never loaded: %q\n%s", text(r), stderr.String())
		}
	}
	if err := cs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	auditVerify(t, dir)
}
