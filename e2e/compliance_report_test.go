package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-ai/portcullis/internal/app"
	pcli "github.com/portcullis-ai/portcullis/internal/cli"
	"github.com/portcullis-ai/portcullis/internal/config"
)

// TestComplianceReportPrints renders the evidence report of a ledger the gateway wrote in
// headless Chromium: the page loads nothing from outside, its chart is drawn, and it prints to
// a PDF (A4), as an auditor files it.
func TestComplianceReportPrints(t *testing.T) {
	exe := chromium(t)
	ctx := context.Background()
	dir := t.TempDir()
	cfgPath, key, err := app.Init(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(ctx, cfg, cfgPath, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	for _, body := range []string{
		`{"tool":"fetch_customer_names","params":{"limit":50}}`,
		`{"tool":"delete_file","params":{"path":"/tmp/x"}}`,
		`{"tool":"fetch_customer_names","params":{"limit":5,"filter":"x' UNION SELECT password FROM users --"}}`,
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/decide", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var ans struct{ Decision string }
		json.NewDecoder(resp.Body).Decode(&ans)
		resp.Body.Close()
		if ans.Decision == "" {
			t.Fatalf("%s: no decision", body)
		}
	}
	srv.Close()
	a.Close(ctx)

	out := filepath.Join(t.TempDir(), "report.html")
	var errb bytes.Buffer
	if code := pcli.Main(ctx, []string{"compliance", "report", "--data", dir, "--pack", "hipaa", "--out", out}, strings.NewReader(""), io.Discard, &errb); code != 0 {
		t.Fatalf("compliance report: exit %d: %s", code, errb.String())
	}

	bctx := browser(t, exe)
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+out), chromedp.WaitVisible(chromedp.ID("controls"))); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]float64](`({
		resources: performance.getEntriesByType('resource').length,
		rects: document.querySelectorAll('svg rect').length,
		chartWidth: document.querySelector('svg').getBoundingClientRect().width,
		controls: document.querySelectorAll('#controls ~ table tr').length,
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if got["resources"] != 0 || got["rects"] < 2 || got["chartWidth"] < 300 || got["controls"] < 10 {
		t.Errorf("rendered page: %v (want no resources loaded, a drawn chart, a row per control)", got)
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
