package cli

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/app"
)

// An upstream's credential error names that upstream's own place in mcp.upstreams, not the
// first place (inventory prepares only the upstream it was asked for).
func TestInventoryCredentialErrorNamesItsUpstream(t *testing.T) {
	cfgPath, _, err := app.Init(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(`
mcp:
  upstreams:
    - name: local
      command: "true"
    - name: saas
      url: http://127.0.0.1:1/mcp
      headers:
        Authorization:
          value_env: PORTCULLIS_TEST_UNSET_TOKEN
`)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs := run(t, "", "inventory", "--config", cfgPath, "--upstream", "saas")
	if code != exitFail || !strings.Contains(errs, "mcp.upstreams[1].headers.Authorization") {
		t.Fatalf("code %d, stderr %s", code, errs)
	}
}
