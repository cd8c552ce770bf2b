package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/compliance"
	"github.com/portcullis-ai/portcullis/sdk"
)

// TestComplianceReportPrints runs the gateway, makes decisions with the SDK, approves one held
// call and denies another as an approver, and reports over the ledger the gateway wrote: the
// JSON names the approver and the outcomes, and the HTML, rendered in headless Chromium, loads
// nothing from outside, draws its chart and prints to a PDF (A4), as an auditor files it.
func TestComplianceReportPrints(t *testing.T) {
	exe := chromium(t)
	dir, agentKey, approverKey := initData(t)
	// Held calls expire after 10 s, so that one can expire in the test; the others are decided
	// well within it.
	cfgPath := filepath.Join(dir, app.ConfigFile)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil || !bytes.Contains(cfg, []byte("  expiry: 15m\n")) {
		t.Fatalf("the default configuration has no approvals expiry of 15m: %v", err)
	}
	if err := os.WriteFile(cfgPath, bytes.Replace(cfg, []byte("  expiry: 15m\n"), []byte("  expiry: 10s\n"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startServe(t, dir)
	ctx := context.Background()
	agent := sdk.New(d.url, sdk.WithAPIKey(agentKey), sdk.WithAgentID(app.DemoAgent))
	if dec, err := agent.Decide(ctx, sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": 10}}); err != nil || !dec.Allowed() {
		t.Fatalf("allowed call: %+v, %v", dec, err)
	}
	if dec, err := agent.Decide(ctx, sdk.DecideRequest{Tool: "delete_file", Params: map[string]any{"path": "/reports/q1.pdf"}}); err != nil || dec.Decision != sdk.Deny {
		t.Fatalf("delete_file: %+v, %v", dec, err)
	}
	approverEnv := []string{"PORTCULLIS_URL=" + d.url, "PORTCULLIS_APPROVER_KEY=" + approverKey}
	for i, verb := range []string{"approve", "deny"} {
		held, err := agent.Decide(ctx, sdk.DecideRequest{Tool: "fetch_customer_names",
			Params: map[string]any{"limit": 10 + i, "filter": "x' UNION SELECT card_number FROM payments --"}})
		if err != nil || !held.Pending() {
			t.Fatalf("risky call: %+v, %v", held, err)
		}
		if code, _, stderr := cli(t, approverEnv, "approvals", verb, held.ApprovalID, "--comment", "reviewed"); code != 0 {
			t.Fatalf("approvals %s: %d %s", verb, code, stderr)
		}
	}
	// A third held call nobody decides: once its deadline passes, reading it records the expiry.
	abandoned, err := agent.Decide(ctx, sdk.DecideRequest{Tool: "fetch_customer_names",
		Params: map[string]any{"limit": 20, "filter": "x' UNION SELECT card_number FROM payments --"}})
	if err != nil || !abandoned.Pending() {
		t.Fatalf("risky call: %+v, %v", abandoned, err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
		code, out, stderr := cli(t, approverEnv, "approvals", "show", abandoned.ApprovalID)
		if code == 0 && strings.Contains(out, "expired") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the held call did not expire: %d %s %s", code, out, stderr)
		}
	}
	d.stop(t)

	code, out, stderr := cli(t, nil, "compliance", "report", "--data", dir, "--pack", "soc2", "--format", "json")
	if code != 0 {
		t.Fatalf("compliance report: %d %s", code, stderr)
	}
	var rep compliance.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	a := rep.Approvals
	if a.Requested != 3 || a.Approved != 1 || a.Denied != 1 || a.Expired != 1 || len(a.Approvers) != 1 || a.Approvers[0].Name != "alice" ||
		a.Approvers[0].Approved != 1 || a.Approvers[0].Denied != 1 {
		t.Errorf("approvals %+v, want alice's one approval and one denial, and one expired", a)
	}
	if len(a.ExpiredCalls) != 1 || a.ExpiredCalls[0].ApprovalID != abandoned.ApprovalID || a.ExpiredCalls[0].DecisionID != abandoned.DecisionID ||
		a.ExpiredCalls[0].Rule != "high_risk_api_call" || a.ExpiredCalls[0].Tool != "fetch_customer_names" {
		t.Errorf("expired calls %+v, want %s", a.ExpiredCalls, abandoned.ApprovalID)
	}
	if d := rep.Decisions; d["allow"] != 1 || d["deny"] != 1 || d["constrain"] != 3 || !rep.Ledger.Verification.Intact || !rep.Ledger.Signed {
		t.Errorf("decisions %v, ledger %+v", d, rep.Ledger)
	}

	html := filepath.Join(t.TempDir(), "report.html")
	if code, _, stderr := cli(t, nil, "compliance", "report", "--data", dir, "--pack", "hipaa", "--out", html); code != 0 {
		t.Fatalf("compliance report: %d %s", code, stderr)
	}
	bctx := browser(t, exe)
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+html), chromedp.WaitVisible(chromedp.ID("controls"))); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]float64](`({
		resources: performance.getEntriesByType('resource').length,
		rects: document.querySelectorAll('svg rect').length,
		chartWidth: document.querySelector('svg').getBoundingClientRect().width,
		controls: document.querySelectorAll('#controls ~ table tr').length,
		overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if got["resources"] != 0 || got["rects"] < 3 || got["chartWidth"] < 300 || got["controls"] < 10 || got["overflow"] > 0 {
		t.Errorf("rendered page: %v (want no resources loaded, a drawn chart, a row per control, nothing wider than the page)", got)
	}
	if text, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("approvals"))); err != nil || !strings.Contains(text, "Approvals") {
		t.Errorf("approvals heading: %q %v", text, err)
	}
	pdf, err := chromedp.Run(bctx, chromedp.PrintToPDF(chromedp.PDFPaper(chromedp.PaperA4), chromedp.PDFPrintBackground()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) || len(pdf) < 10_000 {
		t.Fatalf("PDF: %d bytes, starts %q", len(pdf), pdf[:min(len(pdf), 8)])
	}
	if err := os.WriteFile(filepath.Join(t.TempDir(), "report.pdf"), pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("PORTCULLIS_UPDATE_SCREENSHOTS") == "1" {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "docs", "img", "compliance-report.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
