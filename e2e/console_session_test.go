package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/sdk"
)

// An auditor follows a held exfiltration to its session's flow in a real browser: the audit
// explorer's session search leads to the flow, which shows what the session had seen at each
// decision, and a label's link opens the result that brought it.
func TestConsoleSessionFlowInBrowser(t *testing.T) {
	exe := chromium(t)
	dir, agentKey, _ := initData(t)
	sessionScenarioData(t, dir)
	cfgPath := filepath.Join(dir, app.ConfigFile)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, bytes.Replace(cfg, []byte("  approvers:\n"), []byte("  approvers:\n    - id: audrey\n      role: auditor\n"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := cli(t, nil, "approvals", "keys", "create", "--approver", "audrey", "--data", dir)
	if code != 0 {
		t.Fatalf("approvals keys create audrey: %s", stderr)
	}
	audreyKey := strings.TrimSpace(out)
	d := startServe(t, dir)
	agent := sdk.New(d.url, sdk.WithAPIKey(agentKey), sdk.WithAgentID(app.DemoAgent))
	const session = "task/42 attack"
	held, ids := sessionWorkflow(t, agent, session, injectedPage)
	if !held.Pending() {
		t.Fatalf("exfiltrating call: %+v", held)
	}

	b := browser(t, exe)
	if err := chromedp.Do(b, signIn(d.url, audreyKey), chromedp.Navigate(d.url+"/console/audit"), chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.CSS(`input[name="session"]`), session), chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.ID("session-flow"))); err != nil {
		t.Fatal(err)
	}
	flow := pageText(t, b, "#flow", chromedp.Click(chromedp.ID("session-flow")), chromedp.WaitVisible(chromedp.ID("flow")), shot("session"))
	accessible(t, b, "session")
	for _, want := range []string{"fetch_url", "nothing seen yet", "brought untrusted", "brought private, classification:confidential",
		"send_email", "constrain", "had seen untrusted (from fetch_url #", "private (from read_file #"} {
		if !strings.Contains(flow, want) {
			t.Errorf("the session's flow lacks %q:\n%s", want, flow)
		}
	}
	// The untrusted label of the held send opens the fetched page's result record.
	stored := pageText(t, b, "#stored", chromedp.Click(chromedp.CSS(`tr.step.call:last-child a.source`)), chromedp.WaitVisible(chromedp.ID("stored")))
	if !strings.Contains(stored, `"kind":"tool_result"`) || !strings.Contains(stored, ids[0]) || !strings.Contains(stored, `"labels":["untrusted"]`) {
		t.Errorf("the label's source is not the fetched page's result:\n%s", stored)
	}
	// The record links back to its session, and so does the held call's request.
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS(`#session a`)), chromedp.WaitVisible(chromedp.ID("flow")),
		chromedp.Navigate(d.url+"/console/approvals/"+held.ApprovalID), chromedp.WaitVisible(chromedp.ID("session"))); err != nil {
		t.Fatal(err)
	}
	accessible(t, b, "request with a session")
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS(`#session a`)), chromedp.WaitVisible(chromedp.ID("flow"))); err != nil {
		t.Fatal(err)
	}
}
