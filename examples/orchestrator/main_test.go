package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/sdk"
)

// The example runs against the real embedded default and shows each kind of decision.
func TestOrchestratorAgainstEmbeddedDefault(t *testing.T) {
	ctx := context.Background()
	cfgPath, key, err := app.Init(ctx, t.TempDir())
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
	defer a.Close(ctx)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()

	var out bytes.Buffer
	calls := []Call{
		{"fetch_customer_names", map[string]any{"limit": 10}},
		{"delete_file", map[string]any{"path": "/reports/q3.pdf"}},
		{"fetch_customer_names", map[string]any{"limit": 10, "filter": "' OR 1=1; DROP TABLE customers; --"}},
	}
	if err := Run(ctx, sdk.New(srv.URL, sdk.WithAPIKey(key)), calls, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{`fetch_customer_names: ALLOW {"names":["Ada Lovelace","Grace Hopper"]}`, "delete_file: DENY (the tool is unavailable)", "fetch_customer_names: waiting for approval apr_"}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", out.String())
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], want[i])
		}
	}
}
