package app

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/config"
)

// An export sink is a part of the app: started with it, its metrics on /metrics, its records
// the ledger's, and a sink that cannot be opened fails Open with the sink's key path.
func TestExportSinkRunsWithTheApp(t *testing.T) {
	file := filepath.Join(t.TempDir(), "records.jsonl")
	g := newGatewayWith(t, func(c *config.Config) {
		c.Export.Sinks = []config.ExportSink{{Name: "file", Type: "jsonl", Path: file, Poll: 10 * time.Millisecond}}
	})
	if names := g.app.parts.names(); !slices.Contains(names, "export file") {
		t.Fatalf("parts %v lack the export", names)
	}
	_, a := g.post("/v1/decide", g.key, []byte(`{"tool":"fetch_customer_names","params":{"limit":50,"token":"tok-do-not-export"}}`))
	var text string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(file)
		if text = string(b); strings.Contains(text, a.DecisionID) {
			break
		}
	}
	if !strings.Contains(text, a.DecisionID) || strings.Count(text, "\n") != 1 || strings.Contains(text, "tok-do-not-export") {
		t.Fatalf("export file holds %q, want the one decision %s, redacted", text, a.DecisionID)
	}
	// The file is written before the tailer saves its position and counts the record.
	var body []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(g.srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `portcullis_export_records_total{sink="file"} 1`) {
			break
		}
	}
	for _, want := range []string{`portcullis_export_records_total{sink="file"} 1`, `portcullis_export_lag_records{sink="file"}`,
		`portcullis_export_dropped_total{sink="file"} 0`, `portcullis_export_failing{sink="file"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestExportSinkThatCannotOpenFailsOpen(t *testing.T) {
	for name, sink := range map[string]config.ExportSink{
		"file in a missing directory": {Name: "file", Type: "jsonl", Path: filepath.Join(t.TempDir(), "missing", "dir", "records.jsonl")},
		"credential not set":          {Name: "siem", Type: "otlp", Endpoint: "http://127.0.0.1:1/v1/logs", HeadersEnv: map[string]string{"Authorization": "PORTCULLIS_TEST_UNSET_OTLP_AUTH"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, cfgPath, _, cfg := initDefault(t)
			cfg.Export.Sinks = []config.ExportSink{sink}
			a, err := Open(context.Background(), cfg, cfgPath, slog.New(slog.DiscardHandler))
			if err == nil {
				a.Close(context.Background())
				t.Fatal("Open succeeded with a sink that cannot work")
			}
			if !strings.Contains(err.Error(), "export.sinks[0]") {
				t.Fatalf("error %v does not name the sink", err)
			}
		})
	}
}
