package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/app"
)

// The stdio wrapper's stdout is the MCP channel: an export sink writing there would corrupt it,
// so the wrapper refuses to start, before it opens anything.
func TestMCPWrapperRefusesAnExportToStdout(t *testing.T) {
	dir := t.TempDir()
	cfgPath, key, err := app.Init(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(cfgPath)
	cfg = append(cfg, "\nexport:\n  sinks:\n    - {name: out, type: jsonl, path: \"-\"}\n"...)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PORTCULLIS_API_KEY", key)
	code, stdout, stderr := run(t, "", "mcp", "--data", dir, "--", "true")
	if code != exitFail || !strings.Contains(stderr, `export sink "out" writes to stdout`) || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, app.ExportDir)); !os.IsNotExist(err) {
		t.Fatalf("the wrapper created the export state directory: %v", err)
	}
}
